// The NVRTC facts record: a disk hit in a new process computes its key (and would choose its target)
// without loading NVRTC; a damaged record, or one about another NVRTC file, is never used.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "kernels.hpp"
#include "kiln/driver/nvrtc_api.hpp"
#include "kiln/jit/kernel_cache.hpp"
#include "kiln/jit/nvrtc_facts.hpp"
#include "support/process.hpp"

namespace {

using namespace kiln::jit;
namespace fs = std::filesystem;

class NvrtcFactsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln-nvrtc-facts-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  static const kiln::driver::NvrtcLibrary& nvrtc() { return kiln::driver::nvrtc_library(); }
  static NvrtcFacts loaded_facts() {
    return NvrtcFacts{nvrtc().version.major, nvrtc().version.minor, nvrtc().supported_archs};
  }
  static LibraryIdentity loaded_identity() { return LibraryIdentity::of(nvrtc().library.path).value(); }

  struct Child {
    int exit_code;
    std::string origin, key, image;
    bool nvrtc_loaded = true, nvrtc_mapped = true;
    std::string err;
  };
  // A new process that asks a KernelCache on dir_ for variant `index`.
  Child run_child(int index, std::vector<std::pair<std::string, std::string>> env = {}) const {
    const fs::path image = dir_ / "child-image.bin";
    fs::remove(image);
    kiln::testing::ProcessOptions options;
    options.set_env = std::move(env);
    options.set_env.emplace_back("KILN_CACHE_DIR", dir_.string());  // keeps ~/.cache out of it
    auto r = kiln::testing::run_process({KILN_JIT_CACHE_CHILD, "--hit", dir_.string(), std::to_string(index),
                                         image.string()},
                                        options);
    Child c{r.exit_code, {}, {}, {}, true, true, r.err};
    std::istringstream out(r.out);
    std::string loaded, mapped;
    out >> c.origin >> c.key >> loaded >> mapped;
    c.nvrtc_loaded = loaded != "nvrtc_loaded=0";
    c.nvrtc_mapped = mapped != "nvrtc_mapped=0";
    std::ifstream in(image, std::ios::binary);
    c.image.assign(std::istreambuf_iterator<char>(in), {});
    return c;
  }
  // Compiles variant `index` here (NVRTC loaded in this process): the entry and the facts record.
  Artifact compile_here(int index) const {
    KernelCacheOptions o;
    o.disk.directory = dir_;
    Program p;
    p.name = "variant.cu";
    p.source = std::string(test_kernels::kSaxpy) + "// variant " + std::to_string(index) + "\n";
    Artifact a = KernelCache(o).compile(p, Target::for_arch(90));
    EXPECT_EQ(a.origin(), Origin::compiled);
    return a;
  }
  static std::string bytes(const Artifact& a) { return std::string(static_cast<const char*>(a.data()), a.size()); }
  std::size_t records() const {
    std::size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir_ / "nvrtc-facts"))
      n += !e.path().filename().string().starts_with(".");
    return n;
  }

  fs::path dir_;
};

TEST_F(NvrtcFactsTest, RecordRoundTrips) {
  const NvrtcFacts facts{13, 0, {75, 80, 90, 120}};
  const LibraryIdentity id = loaded_identity();
  EXPECT_FALSE(read_nvrtc_facts(dir_, id));
  ASSERT_TRUE(write_nvrtc_facts(dir_, id, facts));
  EXPECT_EQ(nvrtc_facts_path(dir_, id).parent_path(), dir_ / "nvrtc-facts");
  EXPECT_EQ(read_nvrtc_facts(dir_, id), facts);
  const NvrtcFacts none{12, 8, {}};  // an NVRTC that lists no architectures
  ASSERT_TRUE(write_nvrtc_facts(dir_, id, none));
  EXPECT_EQ(read_nvrtc_facts(dir_, id), none);
  EXPECT_EQ(records(), 1u);  // rewritten in place, no temporary file left
  for (const auto& e : fs::directory_iterator(dir_ / "nvrtc-facts"))
    EXPECT_FALSE(e.path().filename().string().starts_with(".tmp-")) << e.path();
}

TEST_F(NvrtcFactsTest, DamagedRecordIsIgnored) {
  const LibraryIdentity id = loaded_identity();
  ASSERT_TRUE(write_nvrtc_facts(dir_, id, NvrtcFacts{13, 0, {75, 80, 90}}));
  const fs::path path = nvrtc_facts_path(dir_, id);
  std::string good;
  {
    std::ifstream in(path, std::ios::binary);
    good.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::string flipped = good;
  flipped[flipped.find("archs=") + 6] = '8';  // 75 -> 85: the checksum no longer matches
  std::string retyped = good;
  retyped.replace(retyped.find("version=13.0"), 12, "version=12.8");
  const std::vector<std::pair<std::string, std::string>> damaged{
      {"empty", ""},
      {"truncated", good.substr(0, good.size() / 2)},
      {"without its checksum", good.substr(0, good.rfind("sha256="))},
      {"one digit changed", flipped},
      {"version changed", retyped},
      {"garbage", std::string(200, '\x7f')},
      {"a line too many", good + "x\n"},
  };
  for (const auto& [what, text] : damaged) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    EXPECT_FALSE(read_nvrtc_facts(dir_, id)) << what;
  }
  fs::remove(path);
  fs::create_directories(path);  // a folder where the record should be
  EXPECT_FALSE(read_nvrtc_facts(dir_, id));
}

TEST_F(NvrtcFactsTest, RecordForAnotherFileIsNotUsed) {
  const LibraryIdentity id = loaded_identity();
  ASSERT_TRUE(write_nvrtc_facts(dir_, id, loaded_facts()));
  auto other = [&](auto change) {
    LibraryIdentity o = id;
    change(o);
    return o;
  };
  for (const LibraryIdentity& o : {other([](auto& i) { i.mtime_ns += 1; }), other([](auto& i) { i.ctime_ns += 1; }),
                                   other([](auto& i) { i.size += 1; }), other([](auto& i) { i.inode += 1; }),
                                   other([](auto& i) { i.device += 1; }),
                                   other([](auto& i) { i.path += ".copy"; })}) {
    EXPECT_NE(nvrtc_facts_path(dir_, o), nvrtc_facts_path(dir_, id));
    EXPECT_FALSE(read_nvrtc_facts(dir_, o));
    // Even copied under the other file's name, the record names the file it was made for.
    fs::create_directories(nvrtc_facts_path(dir_, o).parent_path());
    fs::copy_file(nvrtc_facts_path(dir_, id), nvrtc_facts_path(dir_, o), fs::copy_options::overwrite_existing);
    EXPECT_FALSE(read_nvrtc_facts(dir_, o));
  }
}

TEST_F(NvrtcFactsTest, IdentityFollowsTheFile) {
  const fs::path file = dir_ / "libfake.so", link = dir_ / "libfake.so.1";
  std::ofstream(file) << "one";
  fs::create_symlink(file, link);
  const auto a = LibraryIdentity::of(link.string());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->path, fs::canonical(file).string());
  EXPECT_EQ(a, LibraryIdentity::of(file.string()));
  const timespec times[2] = {{0, UTIME_OMIT}, {1'000'000'000, 123}};
  ASSERT_EQ(::utimensat(AT_FDCWD, file.c_str(), times, 0), 0);
  const auto touched = LibraryIdentity::of(file.string());
  EXPECT_NE(touched, a);
  EXPECT_EQ(touched->mtime_ns, 1'000'000'000'000'000'123);
  EXPECT_FALSE(LibraryIdentity::of((dir_ / "absent.so").string()));
  EXPECT_FALSE(LibraryIdentity::of(dir_.string()));  // a folder is no library
}

// In a process that has loaded nothing yet, the file found without loading is the file that loads:
// through the dynamic loader's own search (RUNPATH, LD_LIBRARY_PATH, its cache) and through kiln's.
TEST_F(NvrtcFactsTest, LocatedFileIsTheOneThatLoadsInAFreshProcess) {
  KILN_SKIP_UNDER_EMULATOR("the test starts another process of this build through kiln (not run_process), which QEMU's user mode cannot follow into without binfmt_misc");
  // A second NVRTC file in a folder named by LD_LIBRARY_PATH, which the loader searches before its
  // cache. (A copy: a hard link would change the real file's ctime, its identity, for everyone.)
  const fs::path other = dir_ / "ld-library-path" / "libnvrtc.so.13";
  fs::create_directories(other.parent_path());
  fs::copy_file(nvrtc().library.path, other);
  auto run = [&](const char* search, bool with_path) {
    kiln::testing::ProcessOptions options;
    if (with_path) options.set_env = {{"LD_LIBRARY_PATH", other.parent_path().string()}};
    const auto r = kiln::testing::run_process({KILN_JIT_CACHE_CHILD, "--locate", search}, options);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const auto bar = r.out.find('|');
    EXPECT_NE(bar, std::string::npos) << r.out;
    const std::string located = r.out.substr(0, bar), loaded = r.out.substr(bar + 1, r.out.size() - bar - 2);
    EXPECT_EQ(located, loaded) << search << (with_path ? " with LD_LIBRARY_PATH" : "");
    return located;
  };
  run("loader", false);
  EXPECT_EQ(run("loader", true), fs::canonical(other).string());
  EXPECT_EQ(run("environment", true), nvrtc().library.path) << "kiln's own search comes first";
}

TEST_F(NvrtcFactsTest, LoadedNvrtcAnswersAndCorrectsTheRecord) {
  const LibraryIdentity id = loaded_identity();
  const NvrtcFacts wrong{12, 1, {50}};
  ASSERT_TRUE(write_nvrtc_facts(dir_, id, wrong));
  EXPECT_EQ(nvrtc_facts(dir_), loaded_facts());  // NVRTC is loaded here: its own answers win
  EXPECT_EQ(read_nvrtc_facts(dir_, id), loaded_facts());
  fs::remove_all(dir_ / "nvrtc-facts");  // emptied while the process runs: written again
  EXPECT_EQ(nvrtc_facts(dir_), loaded_facts());
  EXPECT_EQ(read_nvrtc_facts(dir_, id), loaded_facts());
  EXPECT_TRUE(kiln::driver::nvrtc_loaded());
  EXPECT_EQ(kiln::driver::nvrtc_location(), nvrtc().library.path);
}

TEST_F(NvrtcFactsTest, KeyIsTheOneTheLoadedNvrtcGives) {
  Program p;
  p.source = test_kernels::kSaxpy;
  const KeyContext loaded{nvrtc().version.as_cuda_version(), toolkit_include_dirs()};
  const KeyContext from_facts = KeyContext::current(dir_);
  EXPECT_EQ(from_facts.nvrtc_cuda_version, loaded.nvrtc_cuda_version);
  EXPECT_EQ(from_facts.toolkit_dirs, loaded.toolkit_dirs);
  EXPECT_EQ(cache_key(p, Target::for_arch(90), from_facts), cache_key(p, Target::for_arch(90), loaded));
  EXPECT_EQ(cache_key(p, Target::for_arch(90)), cache_key(p, Target::for_arch(90), loaded));
}

TEST_F(NvrtcFactsTest, TargetChoiceFromFacts) {
  const NvrtcFacts facts{13, 0, {75, 80, 86, 89, 90, 100, 120}};
  EXPECT_EQ(Target::choose(90, facts, 13000), Target::choose(90, facts.supported_archs, 13000, 13000));
  EXPECT_EQ(Target::choose(90, facts, 13000), (Target{ImageKind::cubin, 90, {}}));
  EXPECT_EQ(Target::choose(95, facts, 13000), (Target{ImageKind::ptx, 90, {}}));
  EXPECT_THROW(Target::choose(95, facts, 12040), kiln::Error);  // PTX from an NVRTC newer than the driver
  EXPECT_THROW(Target::choose(60, facts, 13000), kiln::Error);
}

// (a) The entry and the record were written by this process; a new one hits without NVRTC.
TEST_F(NvrtcFactsTest, DiskHitInANewProcessDoesNotLoadNvrtc) {
  KILN_SKIP_UNDER_EMULATOR("the test starts another process of this build through kiln (not run_process), which QEMU's user mode cannot follow into without binfmt_misc");
  const Artifact a = compile_here(1);
  ASSERT_TRUE(read_nvrtc_facts(dir_, loaded_identity())) << "compiling here records the facts";
  const Child c = run_child(1);
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(c.origin, "disk");
  EXPECT_EQ(c.key, a.key().hex());
  EXPECT_EQ(c.image, bytes(a));
  EXPECT_FALSE(c.nvrtc_loaded);
  EXPECT_FALSE(c.nvrtc_mapped);

  // The same NVRTC through a symbolic link is the same file: its record serves.
  const fs::path link = dir_ / "libnvrtc-link.so";
  fs::create_symlink(nvrtc().library.path, link);
  const Child linked = run_child(1, {{"KILN_NVRTC_PATH", link.string()}});
  ASSERT_EQ(linked.exit_code, 0) << linked.err;
  EXPECT_EQ(linked.key, a.key().hex());
  EXPECT_FALSE(linked.nvrtc_mapped);

  // A miss in a new process loads NVRTC, compiles and stores: the next process hits again.
  const Child miss = run_child(2);
  ASSERT_EQ(miss.exit_code, 0) << miss.err;
  EXPECT_EQ(miss.origin, "compiled");
  EXPECT_TRUE(miss.nvrtc_loaded);
  const Child again = run_child(2);
  EXPECT_EQ(again.origin, "disk");
  EXPECT_EQ(again.key, miss.key);
  EXPECT_EQ(again.image, miss.image);
  EXPECT_FALSE(again.nvrtc_mapped);
}

// (b) A damaged record is ignored: NVRTC is loaded, the hit is still right, the record rewritten.
TEST_F(NvrtcFactsTest, DamagedRecordLoadsNvrtcAndIsRewritten) {
  const Artifact a = compile_here(3);
  const fs::path record = nvrtc_facts_path(dir_, loaded_identity());
  std::string text;
  {
    std::ifstream in(record, std::ios::binary);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  text[text.find("version=") + 8] = '9';  // 13.0 -> 93.0, checksum left as it was
  std::ofstream(record, std::ios::binary | std::ios::trunc) << text;
  ASSERT_FALSE(read_nvrtc_facts(dir_, loaded_identity()));

  const Child c = run_child(3);
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(c.origin, "disk");
  EXPECT_EQ(c.key, a.key().hex());
  EXPECT_EQ(c.image, bytes(a));
  EXPECT_TRUE(c.nvrtc_loaded) << "a damaged record must not be trusted";
  EXPECT_EQ(read_nvrtc_facts(dir_, loaded_identity()), loaded_facts()) << "the child rewrites it";
  const Child next = run_child(3);
  EXPECT_EQ(next.key, a.key().hex());
  EXPECT_FALSE(next.nvrtc_mapped);
}

// (c) A record made for one NVRTC file is not used for another (a copy, then the copy touched).
TEST_F(NvrtcFactsTest, RecordOfAnotherNvrtcFileIsNotUsed) {
  const Artifact a = compile_here(4);
  const fs::path copy = dir_ / "nvrtc-copy" / "libnvrtc.so";
  fs::create_directories(copy.parent_path());
  fs::copy_file(nvrtc().library.path, copy);
  const std::vector<std::pair<std::string, std::string>> env{{"KILN_NVRTC_PATH", copy.string()}};

  const Child first = run_child(4, env);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.origin, "disk");  // same version, same key
  EXPECT_EQ(first.key, a.key().hex());
  EXPECT_EQ(first.image, bytes(a));
  EXPECT_TRUE(first.nvrtc_loaded) << "the original's record was used for the copy";
  EXPECT_EQ(records(), 2u);
  EXPECT_EQ(read_nvrtc_facts(dir_, LibraryIdentity::of(copy.string()).value()), loaded_facts());

  EXPECT_FALSE(run_child(4, env).nvrtc_mapped) << "the copy's own record serves";

  const timespec times[2] = {{0, UTIME_OMIT}, {1'600'000'000, 0}};  // same bytes, another mtime
  ASSERT_EQ(::utimensat(AT_FDCWD, copy.c_str(), times, 0), 0);
  const Child touched = run_child(4, env);
  ASSERT_EQ(touched.exit_code, 0) << touched.err;
  EXPECT_EQ(touched.key, a.key().hex());
  EXPECT_TRUE(touched.nvrtc_loaded) << "the record of the copy before it was touched was used";
  EXPECT_EQ(records(), 3u);
}

}  // namespace
