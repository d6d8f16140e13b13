// jit::Package with the real NVRTC: the manifest's format, pack() and Package::open's refusals, each
// with its PackageProblem, and the image readers on real CUBIN and PTX.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "../service/support/packages.hpp"
#include "kernels.hpp"
#include "kiln/jit/kernel_cache.hpp"
#include "kiln/jit/package.hpp"
#include "support/files.hpp"
#include "support/nvrtc_compile.hpp"

namespace {

using namespace kiln::jit;
using kiln::testing::read_all;
using kiln::testing::write_all;
using nlohmann::json;
namespace fs = std::filesystem;
using P = ParameterType;

// One memory-only cache for the binary: the tests pack the same few targets again and again.
KernelCache& cache() {
  static KernelCache c([] {
    KernelCacheOptions o;
    o.use_disk = false;
    return o;
  }());
  return c;
}

PackageManifest small_manifest() {
  PackageManifest m;
  m.name = "saxpy";
  m.version = 3;
  m.description = "y = a x + y";
  m.entry_points = {{"saxpy", "saxpy", {P::f32, P::pointer, P::pointer, P::i32}}};
  m.architectures = {90, 100};
  m.source = "src/saxpy.cu";
  m.headers = {{"common.h", "include/common.h"}};
  m.options.standard = "c++17";
  m.options.defines = {"N=4"};
  m.options.fast_math = true;
  m.options.max_registers = 64;
  m.images = {{ImageKind::cubin, 90, "sm_90.cubin"}, {ImageKind::ptx, 90, "compute_90.ptx"}};
  const std::string digest(64, 'a');
  for (const char* f : {"src/saxpy.cu", "include/common.h", "sm_90.cubin", "compute_90.ptx"}) {
    m.files[f] = digest;
    m.file_sizes[f] = 100;
  }
  m.tenants = {"alice"};
  return m;
}

// What parse() throws for `text`, as problem + message.
std::pair<PackageProblem, std::string> refusal(const std::string& text) {
  try {
    PackageManifest::parse(text);
  } catch (const PackageError& e) {
    return {e.problem(), e.what()};
  }
  ADD_FAILURE() << "parse accepted " << text;
  return {PackageProblem::no_image, ""};
}

TEST(PackageManifest, RoundTrips) {
  const PackageManifest m = small_manifest();
  const std::string text = m.to_json();
  const PackageManifest back = PackageManifest::parse(text);
  EXPECT_EQ(back.to_json(), text);
  EXPECT_EQ(back.name, "saxpy");
  EXPECT_EQ(back.version, 3u);
  EXPECT_EQ(back.description, m.description);
  ASSERT_EQ(back.entry_points.size(), 1u);
  EXPECT_EQ(back.entry_points[0].parameters, m.entry_points[0].parameters);
  EXPECT_EQ(back.architectures, (std::vector<int>{90, 100}));
  EXPECT_EQ(back.headers, m.headers);
  EXPECT_EQ(back.options.standard, "c++17");
  EXPECT_EQ(back.options.defines, m.options.defines);
  EXPECT_TRUE(back.options.fast_math);
  EXPECT_EQ(back.options.max_registers, 64);
  ASSERT_EQ(back.images.size(), 2u);
  EXPECT_EQ(back.images[1].kind, ImageKind::ptx);
  EXPECT_EQ(back.images[1].arch, 90);
  EXPECT_EQ(back.files, m.files);
  EXPECT_EQ(back.file_sizes, m.file_sizes);
  EXPECT_EQ(back.tenants, m.tenants);
  // The documented shape of files.
  const json j = json::parse(text);
  EXPECT_EQ(j["files"]["sm_90.cubin"]["bytes"], 100);
  EXPECT_EQ(j["architectures"][1], "sm_100");
  EXPECT_EQ(j["images"][1]["arch"], "compute_90");
}

TEST(PackageManifest, ParameterTypes) {
  for (auto t : {P::pointer, P::i8, P::u8, P::i16, P::u16, P::i32, P::u32, P::i64, P::u64, P::f16, P::f32, P::f64})
    EXPECT_EQ(parse_parameter_type(to_string(t)), t);
  EXPECT_FALSE(parse_parameter_type("float"));
  EXPECT_EQ(size_of(P::pointer), 8u);
  EXPECT_EQ(size_of(P::f16), 2u);
  EXPECT_EQ(size_of(P::u8), 1u);
  EXPECT_EQ(size_of(P::f32), 4u);
}

TEST(PackageManifest, RefusesWhatDoesNotFollowTheFormat) {
  const json good = json::parse(small_manifest().to_json());
  struct Case {
    const char* what;
    std::function<void(json&)> change;
    const char* message;  // a part of the message (the field it names)
  };
  const std::vector<Case> cases = {
      {"no JSON", nullptr, "is not JSON"},
      {"name charset", [](json& j) { j["name"] = "sax py"; }, "name"},
      {"name starts with a dot", [](json& j) { j["name"] = ".hidden"; }, "name"},
      {"name too long", [](json& j) { j["name"] = std::string(65, 'a'); }, "name"},
      {"version 0", [](json& j) { j["version"] = 0; }, "version"},
      {"negative version", [](json& j) { j["version"] = -1; }, "version"},
      {"version a string", [](json& j) { j["version"] = "3"; }, "version"},
      {"missing name", [](json& j) { j.erase("name"); }, "name: is missing"},
      {"missing files", [](json& j) { j.erase("files"); }, "files: is missing"},
      {"unknown field", [](json& j) { j["colour"] = "red"; }, "colour"},
      {"unknown format", [](json& j) { j["format"] = 2; }, "format"},
      {"duplicate entry point", [](json& j) { j["entry_points"].push_back(j["entry_points"][0]); }, "listed twice"},
      {"no entry points", [](json& j) { j["entry_points"] = json::array(); }, "entry_points"},
      {"unknown parameter type", [](json& j) { j["entry_points"][0]["parameters"][0] = "float"; },
       "entry_points[0].parameters[0]"},
      {"bad architecture", [](json& j) { j["architectures"][0] = "sm90"; }, "architectures[0]"},
      {"unknown image kind", [](json& j) { j["images"][0]["kind"] = "fatbin"; }, "images[0].kind"},
      {"image not in files", [](json& j) { j["files"].erase("sm_90.cubin"); }, "not listed in files"},
      {"bad digest", [](json& j) { j["files"]["sm_90.cubin"]["sha256"] = "abc"; }, "SHA-256"},
      {"missing bytes", [](json& j) { j["files"]["sm_90.cubin"].erase("bytes"); }, "bytes"},
  };
  for (const Case& c : cases) {
    json j = good;
    std::string text = "{\"format\": 1, \"name\": ";
    if (c.change) {
      c.change(j);
      text = j.dump();
    }
    const auto [problem, message] = refusal(text);
    EXPECT_EQ(problem, PackageProblem::manifest_invalid) << c.what << ": " << message;
    EXPECT_NE(message.find(c.message), std::string::npos) << c.what << ": " << message;
    EXPECT_NE(message.find("manifest_invalid"), std::string::npos) << message;
  }
  // A path leading outside is its own problem, naming the path as the file.
  json j = good;
  j["source"] = "../x.cu";
  j["files"]["../x.cu"] = j["files"]["src/saxpy.cu"];
  try {
    PackageManifest::parse(j.dump());
    ADD_FAILURE() << "accepted ../x.cu";
  } catch (const PackageError& e) {
    EXPECT_EQ(e.problem(), PackageProblem::path_outside) << e.what();
    EXPECT_EQ(e.file(), "../x.cu");
  }
  // to_json refuses what parse would.
  PackageManifest bad = small_manifest();
  bad.version = 0;
  EXPECT_THROW((void)bad.to_json(), PackageError);
}

TEST(PackageImages, ReadParametersAndArchitectureFromRealImages) {
  KILN_SKIP_UNLESS_NVRTC(12080, "compiling for sm_100");
  Program p;
  p.name = "saxpy.cu";
  p.source = kiln::jit::test_kernels::kSaxpy;
  for (ImageKind kind : {ImageKind::cubin, ImageKind::ptx}) {
    const Artifact a = cache().compile(p, Target::for_arch(90, kind));
    const auto sizes = entry_parameter_sizes(a.image(), kind, "saxpy");
    ASSERT_TRUE(sizes) << to_string(kind);
    EXPECT_EQ(*sizes, (std::vector<std::size_t>{4, 8, 8, 4})) << to_string(kind);
    EXPECT_FALSE(entry_parameter_sizes(a.image(), kind, "not_there")) << to_string(kind);
    EXPECT_EQ(image_architecture(a.image(), kind), 90) << to_string(kind);
  }
  EXPECT_EQ(image_architecture(cache().compile(p, Target::for_arch(100)).image(), ImageKind::cubin), 100);
  try {
    (void)image_architecture("definitely not an image", ImageKind::cubin);
    ADD_FAILURE() << "read garbage as a CUBIN";
  } catch (const PackageError& e) {
    EXPECT_EQ(e.problem(), PackageProblem::unreadable);
  }
  EXPECT_THROW((void)entry_parameter_sizes("garbage", ImageKind::cubin, "saxpy"), PackageError);
}

// Parameters of every size and shape the readers must agree on, in CUBIN and PTX alike.
TEST(PackageImages, ParameterShapesAgreeBetweenCubinAndPtx) {
  KILN_SKIP_UNLESS_NVRTC(12000, "the toolkit's CCCL headers (CUB, libcu++, cuda_fp16.h of CUDA 13 refuse an older NVRTC)");
  Program p;
  p.name = "shapes.cu";
  p.source = R"(
#include <cuda_fp16.h>
struct Pair { double a; int b; };          // 16 bytes, aligned to 8
struct Three { char c[3]; };               // 3 bytes
extern "C" __global__ void none() {}
extern "C" __global__ void small(char a, short b, __half h, unsigned char d) {}
extern "C" __global__ void wide(double d, long long l, Pair p, Three t, float* f) {}
extern "C" __global__ void k(int a) {}
extern "C" __global__ void k2(int a, int b) {}
extern "C" __device__ __noinline__ int helper(int a) { return a + 1; }
extern "C" __global__ void calls(int* o) { *o = helper(*o); }
)";
  const std::map<std::string, std::vector<std::size_t>> expected = {
      {"none", {}}, {"small", {1, 2, 2, 1}}, {"wide", {8, 8, 16, 3, 8}}, {"k", {4}}, {"k2", {4, 4}}, {"calls", {8}}};
  for (ImageKind kind : {ImageKind::cubin, ImageKind::ptx}) {
    const Artifact a = cache().compile(p, Target::for_arch(90, kind));
    for (const auto& [symbol, sizes] : expected) {
      const auto got = entry_parameter_sizes(a.image(), kind, symbol);
      ASSERT_TRUE(got) << to_string(kind) << " " << symbol;
      EXPECT_EQ(*got, sizes) << to_string(kind) << " " << symbol;
    }
    // A device function is no entry point; a prefix of a kernel's name is not that kernel.
    EXPECT_FALSE(entry_parameter_sizes(a.image(), kind, "helper")) << to_string(kind);
    EXPECT_FALSE(entry_parameter_sizes(a.image(), kind, "sma")) << to_string(kind);
    EXPECT_FALSE(entry_parameter_sizes(a.image(), kind, "k3")) << to_string(kind);
  }
}

// Every architecture this NVRTC compiles for reads back as itself (both ELF header ABIs).
TEST(PackageImages, ArchitectureOfEveryNvrtcTarget) {
  KILN_SKIP_UNLESS_NVRTC(12080, "compiling for sm_100");
  Program p;
  p.name = "saxpy.cu";
  p.source = kiln::jit::test_kernels::kSaxpy;
  for (int arch : {75, 80, 86, 89, 90, 100, 120}) {
    for (ImageKind kind : {ImageKind::cubin, ImageKind::ptx}) {
      const Artifact a = cache().compile(p, Target::for_arch(arch, kind));
      EXPECT_EQ(image_architecture(a.image(), kind), arch) << to_string(kind) << " " << arch;
      EXPECT_EQ(entry_parameter_sizes(a.image(), kind, "saxpy"), (std::vector<std::size_t>{4, 8, 8, 4}))
          << to_string(kind) << " " << arch;
    }
  }
}

class PackageOpen : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = kiln::testing::fresh_test_folder("kiln-package");
  }
  void TearDown() override { fs::remove_all(dir_); }

  // "stamp" version 1 for sm_90 CUBIN + compute_90 PTX, with its source.
  fs::path packed() { return kiln::testing::pack_stamp(cache(), dir_ / "repo", "stamp", 1, {"sm_90", "compute_90"}, true); }

  // Edits manifest.json of `folder`.
  static void edit_manifest(const fs::path& folder, const std::function<void(json&)>& change) {
    json j = json::parse(read_all(folder / "manifest.json"));
    change(j);
    write_all(folder / "manifest.json", j.dump(2));
  }

  static PackageError refusal(const fs::path& folder) {
    try {
      (void)Package::open(folder);
    } catch (const PackageError& e) {
      return e;
    }
    ADD_FAILURE() << "opened " << folder;
    return PackageError(PackageProblem::no_image, "", "opened");
  }

  fs::path dir_;
};

TEST_F(PackageOpen, PackThenOpen) {
  const fs::path folder = packed();
  const Package p = Package::open(folder);
  const PackageManifest& m = p.manifest();
  EXPECT_EQ(m.name, "stamp");
  EXPECT_EQ(m.version, 1u);
  EXPECT_EQ(m.architectures, std::vector<int>{90});
  ASSERT_EQ(m.images.size(), 2u);
  ASSERT_EQ(m.entry_points.size(), 2u);
  EXPECT_EQ(m.entry_points[0].symbol, "stamp");  // extern "C"
  EXPECT_EQ(m.source, "src/stamp.cu");
  EXPECT_TRUE(fs::is_regular_file(folder / "manifest.json"));
  EXPECT_TRUE(fs::is_regular_file(folder / "sm_90.cubin"));
  EXPECT_TRUE(fs::is_regular_file(folder / "compute_90.ptx"));
  EXPECT_TRUE(fs::is_regular_file(folder / "src/stamp.cu"));
  for (const auto& [file, bytes] : m.file_sizes) EXPECT_EQ(fs::file_size(folder / file), bytes) << file;
  // No temporary folder left beside it.
  for (const auto& e : fs::directory_iterator(folder.parent_path()))
    EXPECT_EQ(e.path().filename(), "1") << e.path();
  ASSERT_TRUE(p.program());
  EXPECT_EQ(p.program()->name_expressions, (std::vector<std::string>{"stamp", "add"}));
  EXPECT_EQ(p.program()->options.defines, std::vector<std::string>{"STAMP_VERSION=1u"});

  // Images per architecture: the exact CUBIN, PTX for newer, nothing for older.
  const PackageImage* exact = p.image_for(90);
  ASSERT_NE(exact, nullptr);
  EXPECT_EQ(exact->kind, ImageKind::cubin);
  EXPECT_EQ(exact->file, "sm_90.cubin");
  ASSERT_NE(p.image_bytes(*exact), nullptr);
  EXPECT_EQ(p.image_bytes(*exact)->substr(0, 4), "\x7f" "ELF");
  const PackageImage* newer = p.image_for(100);
  ASSERT_NE(newer, nullptr);
  EXPECT_EQ(newer->kind, ImageKind::ptx);
  EXPECT_EQ(newer->arch, 90);
  std::string why;
  EXPECT_EQ(p.image_for(80, &why), nullptr);
  EXPECT_NE(why.find("sm_80"), std::string::npos) << why;
  EXPECT_NE(why.find("CUBIN for sm_90"), std::string::npos) << why;
  EXPECT_NE(why.find("PTX for compute_90"), std::string::npos) << why;
  EXPECT_EQ(p.image_for(80), nullptr);  // without why
}

TEST_F(PackageOpen, CubinOnlyRefusesOtherArchitectures) {
  const Package p = Package::open(kiln::testing::pack_stamp(cache(), dir_, "stamp", 2));
  EXPECT_NE(p.image_for(90), nullptr);
  std::string why;
  EXPECT_EQ(p.image_for(100, &why), nullptr);
  EXPECT_NE(why.find("no PTX"), std::string::npos) << why;
  EXPECT_FALSE(p.program());
}

TEST_F(PackageOpen, HighestPtxNotAboveTheDevice) {
  KILN_SKIP_UNLESS_NVRTC(12080, "compiling for sm_100");
  const Package p = Package::open(
      kiln::testing::pack_stamp(cache(), dir_, "stamp", 3, {"compute_80", "compute_90", "sm_100"}));
  EXPECT_EQ(p.manifest().architectures, (std::vector<int>{80, 90, 100}));
  auto chosen = [&](int arch) {
    const PackageImage* im = p.image_for(arch);
    return im ? im->file : std::string("none");
  };
  EXPECT_EQ(chosen(75), "none");
  EXPECT_EQ(chosen(80), "compute_80.ptx");
  EXPECT_EQ(chosen(86), "compute_80.ptx");
  EXPECT_EQ(chosen(90), "compute_90.ptx");
  EXPECT_EQ(chosen(100), "sm_100.cubin");
  EXPECT_EQ(chosen(103), "compute_90.ptx");  // a CUBIN runs on its own architecture only
  EXPECT_EQ(chosen(120), "compute_90.ptx");
}

TEST_F(PackageOpen, ChecksumMismatchForAFlippedByte) {
  const fs::path folder = packed();
  std::string bytes = read_all(folder / "sm_90.cubin");
  bytes[bytes.size() / 2] ^= 0x40;
  write_all(folder / "sm_90.cubin", bytes);
  const PackageError e = refusal(folder);
  EXPECT_EQ(e.problem(), PackageProblem::checksum_mismatch) << e.what();
  EXPECT_EQ(e.file(), "sm_90.cubin");
  // A file that grew is damaged too, not a copy in progress.
  const fs::path other = kiln::testing::pack_stamp(cache(), dir_ / "repo", "stamp", 2, {"sm_90", "compute_90"}, true);
  write_all(other / "src/stamp.cu", read_all(other / "src/stamp.cu") + "\n");
  EXPECT_EQ(refusal(other).problem(), PackageProblem::checksum_mismatch);
}

TEST_F(PackageOpen, IncompleteWithoutManifestOrWithATruncatedFile) {
  const fs::path folder = packed();
  const std::string manifest = read_all(folder / "manifest.json");
  fs::remove(folder / "manifest.json");
  PackageError e = refusal(folder);
  EXPECT_EQ(e.problem(), PackageProblem::incomplete) << e.what();
  EXPECT_EQ(e.file(), "manifest.json");

  write_all(folder / "manifest.json", manifest);
  ASSERT_NO_THROW((void)Package::open(folder));
  const std::string ptx = read_all(folder / "compute_90.ptx");
  write_all(folder / "compute_90.ptx", ptx.substr(0, ptx.size() / 2));
  e = refusal(folder);
  EXPECT_EQ(e.problem(), PackageProblem::incomplete) << e.what();
  EXPECT_EQ(e.file(), "compute_90.ptx");

  fs::remove(folder / "compute_90.ptx");
  e = refusal(folder);
  EXPECT_EQ(e.problem(), PackageProblem::incomplete) << e.what();
  EXPECT_EQ(e.file(), "compute_90.ptx");

  EXPECT_EQ(refusal(dir_ / "no-such-folder").problem(), PackageProblem::incomplete);
}

TEST_F(PackageOpen, ManifestInvalid) {
  const fs::path folder = packed();
  write_all(folder / "manifest.json", "{ not json");
  EXPECT_EQ(refusal(folder).problem(), PackageProblem::manifest_invalid);
}

TEST_F(PackageOpen, PathOutsideThroughTheManifest) {
  const fs::path folder = packed();
  write_all(dir_ / "x", "outside");
  edit_manifest(folder, [](json& j) {
    j["source"] = "../x";
    j["files"]["../x"] = j["files"]["src/stamp.cu"];
  });
  const PackageError e = refusal(folder);
  EXPECT_EQ(e.problem(), PackageProblem::path_outside) << e.what();
  EXPECT_EQ(e.file(), "../x");
}

TEST_F(PackageOpen, PathOutsideThroughASymbolicLink) {
  const fs::path folder = packed();
  // A file replaced by a link to an identical copy outside: the checksum would pass, the link may not.
  fs::copy_file(folder / "src/stamp.cu", dir_ / "stamp-outside.cu");
  fs::remove(folder / "src/stamp.cu");
  fs::create_symlink(dir_ / "stamp-outside.cu", folder / "src/stamp.cu");
  PackageError e = refusal(folder);
  EXPECT_EQ(e.problem(), PackageProblem::path_outside) << e.what();
  EXPECT_EQ(e.file(), "src/stamp.cu");

  // A folder replaced by a relative link outside.
  fs::remove(folder / "src/stamp.cu");
  fs::rename(folder / "src", dir_ / "src-outside");
  fs::rename(dir_ / "stamp-outside.cu", dir_ / "src-outside" / "stamp.cu");
  fs::create_symlink("../../../src-outside", folder / "src");
  e = refusal(folder);
  EXPECT_EQ(e.problem(), PackageProblem::path_outside) << e.what();

  // A dangling link outside is outside too; a dangling link inside is a missing file.
  fs::remove(folder / "src");
  fs::create_directories(folder / "src");
  fs::create_symlink(dir_ / "gone.cu", folder / "src" / "stamp.cu");
  EXPECT_EQ(refusal(folder).problem(), PackageProblem::path_outside);
  fs::remove(folder / "src" / "stamp.cu");
  fs::create_symlink("gone.cu", folder / "src" / "stamp.cu");
  EXPECT_EQ(refusal(folder).problem(), PackageProblem::incomplete);
  fs::remove_all(folder / "src");

  // manifest.json itself as a link outside.
  fs::copy_file(folder / "manifest.json", dir_ / "manifest-outside.json");
  fs::remove(folder / "manifest.json");
  fs::create_symlink(dir_ / "manifest-outside.json", folder / "manifest.json");
  e = refusal(folder);
  EXPECT_EQ(e.problem(), PackageProblem::path_outside) << e.what();
  EXPECT_EQ(e.file(), "manifest.json");
  fs::remove(folder / "manifest.json");
  fs::copy_file(dir_ / "manifest-outside.json", folder / "manifest.json");

  // A link that stays inside is fine.
  fs::create_directories(folder / "real");
  fs::copy_file(dir_ / "src-outside" / "stamp.cu", folder / "real" / "stamp.cu");
  fs::create_symlink("real", folder / "src");
  EXPECT_NO_THROW((void)Package::open(folder));
}

TEST_F(PackageOpen, UndeclaredArchitecture) {
  const fs::path folder = packed();
  // The CUBIN is for sm_90, which the package no longer declares.
  edit_manifest(folder, [](json& j) { j["architectures"] = {"sm_100"}; });
  PackageError e = refusal(folder);
  EXPECT_EQ(e.problem(), PackageProblem::undeclared_architecture) << e.what();
  EXPECT_EQ(e.file(), "sm_90.cubin");

  // The entry says sm_100 (declared), the file's ELF header says sm_90.
  edit_manifest(folder, [](json& j) {
    j["architectures"] = {"sm_90", "sm_100"};
    j["images"][0]["arch"] = "sm_100";
  });
  e = refusal(folder);
  EXPECT_EQ(e.problem(), PackageProblem::undeclared_architecture) << e.what();
  EXPECT_NE(std::string(e.what()).find("the image says sm_90"), std::string::npos) << e.what();
}

TEST_F(PackageOpen, PtxWhoseTargetDiffersFromItsEntry) {
  const fs::path folder = packed();
  edit_manifest(folder, [](json& j) {
    j["architectures"] = {"sm_80", "sm_90"};
    j["images"][1]["arch"] = "compute_80";
  });
  const PackageError e = refusal(folder);
  EXPECT_EQ(e.problem(), PackageProblem::undeclared_architecture) << e.what();
  EXPECT_EQ(e.file(), "compute_90.ptx");
}

TEST_F(PackageOpen, EntryPointMissing) {
  const fs::path folder = packed();
  edit_manifest(folder, [](json& j) { j["entry_points"][1]["symbol"] = "subtract"; });
  const PackageError e = refusal(folder);
  EXPECT_EQ(e.problem(), PackageProblem::entry_point_missing) << e.what();
  EXPECT_NE(std::string(e.what()).find("subtract"), std::string::npos) << e.what();
}

TEST_F(PackageOpen, ParametersDiffer) {
  const fs::path folder = packed();
  edit_manifest(folder, [](json& j) { j["entry_points"][0]["parameters"] = {"ptr", "u64"}; });
  PackageError e = refusal(folder);
  EXPECT_EQ(e.problem(), PackageProblem::parameters_differ) << e.what();
  EXPECT_EQ(e.file(), "sm_90.cubin");
  // Same count, other sizes; and one parameter too few.
  edit_manifest(folder, [](json& j) { j["entry_points"][0]["parameters"] = {"ptr"}; });
  EXPECT_EQ(refusal(folder).problem(), PackageProblem::parameters_differ);
  // The same sizes under other names are the same to a launch (u32 and i32, f32): accepted.
  edit_manifest(folder, [](json& j) { j["entry_points"][0]["parameters"] = {"u64", "f32"}; });
  EXPECT_NO_THROW((void)Package::open(folder));
}

class Pack : public PackageOpen {
 protected:
  PackRequest stamp_request() {
    PackRequest r;
    r.name = "stamp";
    r.version = 1;
    r.program.name = "stamp.cu";
    r.program.source = kiln::testing::kStampSource;
    r.program.options.defines = {"STAMP_VERSION=1u"};
    r.entry_points = {{"stamp", "", {P::pointer, P::u32}}, {"add", "", {P::pointer, P::u32, P::u32}}};
    r.targets = {Target::parse("sm_90"), Target::parse("compute_90")};
    r.parallel = 2;
    return r;
  }
  // Nothing but `keep` in dir_.
  void expect_only(const std::vector<std::string>& keep) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, keep);
  }
};

TEST_F(Pack, ReportsProgressAndMangledSymbols) {
  PackRequest r = stamp_request();
  r.program.source += "template <int N> __global__ void fill(int* out) { out[threadIdx.x] = N; }\n";
  r.entry_points.push_back({"fill<3>", "", {P::pointer}});
  r.include_source = false;
  std::vector<std::size_t> done;
  r.progress = [&](const Target&, std::size_t d, std::size_t total) {
    EXPECT_EQ(total, 2u);
    done.push_back(d);
  };
  const PackageManifest m = pack(r, cache(), dir_ / "out");
  EXPECT_EQ(done, (std::vector<std::size_t>{1, 2}));
  EXPECT_EQ(m.entry_points[2].symbol, "_Z4fillILi3EEvPi");
  EXPECT_TRUE(m.source.empty());
  EXPECT_FALSE(fs::exists(dir_ / "out" / "src"));
  const Package p = Package::open(dir_ / "out");
  EXPECT_EQ(p.manifest().to_json(), m.to_json());
}

TEST_F(Pack, RefusesWrongDeclaredParametersAndLeavesNothing) {
  PackRequest r = stamp_request();
  r.entry_points[1].parameters = {P::pointer, P::u32};  // add takes three
  try {
    pack(r, cache(), dir_ / "out");
    ADD_FAILURE() << "packed";
  } catch (const PackageError& e) {
    EXPECT_EQ(e.problem(), PackageProblem::parameters_differ) << e.what();
    EXPECT_NE(std::string(e.what()).find("'add'"), std::string::npos) << e.what();
  }
  expect_only({});
  r.entry_points[1].parameters = {P::pointer, P::u32, P::f64};  // same count, other sizes
  EXPECT_THROW(pack(r, cache(), dir_ / "out"), PackageError);
  expect_only({});
}

TEST_F(Pack, RefusesAnExistingOut) {
  fs::create_directories(dir_ / "out");
  EXPECT_THROW(pack(stamp_request(), cache(), dir_ / "out"), kiln::Error);
  EXPECT_TRUE(fs::is_empty(dir_ / "out"));
  write_all(dir_ / "file", "x");
  EXPECT_THROW(pack(stamp_request(), cache(), dir_ / "file"), kiln::Error);
  expect_only({"file", "out"});
}

TEST_F(Pack, RefusesBadRequestsBeforeCompiling) {
  PackRequest r = stamp_request();
  r.name = "bad name";
  EXPECT_THROW(pack(r, cache(), dir_ / "out"), PackageError);
  r = stamp_request();
  r.version = 0;
  EXPECT_THROW(pack(r, cache(), dir_ / "out"), PackageError);
  r = stamp_request();
  r.entry_points.push_back(r.entry_points[0]);
  EXPECT_THROW(pack(r, cache(), dir_ / "out"), PackageError);
  r = stamp_request();
  r.targets.clear();
  EXPECT_THROW(pack(r, cache(), dir_ / "out"), kiln::Error);
  r = stamp_request();
  r.targets = {Target::for_arch(90, ImageKind::ltoir)};
  EXPECT_THROW(pack(r, cache(), dir_ / "out"), kiln::Error);
  r = stamp_request();
  r.program.include_dirs = {"/usr/include"};
  EXPECT_THROW(pack(r, cache(), dir_ / "out"), kiln::Error);  // include folders do not travel
  expect_only({});
}

TEST_F(Pack, AnEntryPointTheSourceLacksLeavesNothing) {
  PackRequest r = stamp_request();
  r.entry_points.push_back({"subtract", "", {P::pointer}});
  EXPECT_THROW(pack(r, cache(), dir_ / "out"), kiln::Error);
  expect_only({});
}

TEST_F(Pack, CompileErrorLeavesNothing) {
  PackRequest r = stamp_request();
  r.program.source += "__global__ void broken() { undefined_thing(); }\n";
  EXPECT_THROW(pack(r, cache(), dir_ / "out"), kiln::Error);
  expect_only({});
}

}  // namespace
