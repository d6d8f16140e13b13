// jit::link with the real NVRTC and the real nvJitLink: LTO-IR, mixed inputs, link errors as
// diagnostics, the link key, and links cached by KernelCache (memory and disk tiers, corruption,
// single flight), and device libraries.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <latch>
#include <set>
#include <thread>

#include "../support/files.hpp"
#include "../support/process.hpp"
#include "link_kernels.hpp"
#include "kiln/driver/nvjitlink_api.hpp"
#include "kiln/jit/artifact.hpp"
#include "kiln/jit/device_library.hpp"
#include "kiln/jit/kernel_cache.hpp"
#include "kiln/jit/linker.hpp"
#include "support/nvrtc_compile.hpp"

namespace {

using namespace kiln::jit;
using namespace kiln::jit::test_kernels;
using kiln::Domain;
using kiln::Errc;
namespace fs = std::filesystem;

constexpr int kArch = 90;

Target lto_target() { return Target::for_arch(kArch, ImageKind::ltoir); }
Target cubin_target() { return Target::for_arch(kArch); }

Artifact compile_or_fail(const Program& program, const Target& target) {
  CompileResult r = compile(program, target);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().what());
  return r.value();
}

bool is_elf(std::string_view image) { return image.size() > 4 && image.substr(0, 4) == "\x7f" "ELF"; }

LinkJob job_of(std::vector<LinkInput> inputs, std::string name = "job") {
  LinkJob job;
  job.name = std::move(name);
  job.inputs = std::move(inputs);
  return job;
}

LinkInput library_ltoir() { return LinkInput::from_artifact(compile_or_fail(library_program(), lto_target()), "scale_add.ltoir"); }
LinkInput caller_ltoir() { return LinkInput::from_artifact(compile_or_fail(caller_program(), lto_target()), "caller.ltoir"); }

// ---------------------------------------------------------------- LTO-IR

TEST(LtoIr, NvrtcWritesLtoIrForTheArchitecture) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  const Artifact lib = compile_or_fail(library_program(), lto_target());
  EXPECT_EQ(lib.kind(), ImageKind::ltoir);
  EXPECT_EQ(lib.arch(), kArch);
  EXPECT_EQ(lib.target().arch_name(), "lto_90");
  EXPECT_GT(lib.size(), 0u);
  EXPECT_FALSE(is_elf(lib.image())) << "a CUBIN, not LTO-IR";
  EXPECT_EQ(lib.image().find(".version"), std::string_view::npos) << "PTX, not LTO-IR";
  // Another kind of image: another key.
  EXPECT_NE(lib.key(), cache_key(library_program(), cubin_target()));
}

TEST(LtoIr, TargetParsesAndNamesLto) {
  const Target t = Target::parse("lto_90");
  EXPECT_EQ(t.kind, ImageKind::ltoir);
  EXPECT_EQ(t.arch, 90);
  EXPECT_EQ(t.nvrtc_option(), "--gpu-architecture=sm_90");
  EXPECT_EQ(to_string(ImageKind::ltoir), "ltoir");
}

TEST(LtoIr, SurvivesTheDiskEntryFormat) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  const Artifact lib = compile_or_fail(library_program(), lto_target());
  const Artifact back = deserialize_artifact(serialize(lib), Origin::disk);
  EXPECT_EQ(back.kind(), ImageKind::ltoir);
  EXPECT_EQ(back.image(), lib.image());
}

// ---------------------------------------------------------------- links of mixed inputs

TEST(Link, LtoIrWithLtoIrMakesACubin) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  const LinkResult r = link(job_of({caller_ltoir(), library_ltoir()}, "saxpy-link"), cubin_target());
  ASSERT_TRUE(r.ok()) << r.error().what();
  EXPECT_EQ(r.artifact->kind(), ImageKind::cubin);
  EXPECT_EQ(r.artifact->arch(), kArch);
  EXPECT_EQ(r.artifact->program_name(), "saxpy-link");
  EXPECT_TRUE(is_elf(r.artifact->image()));
  EXPECT_NE(r.artifact->image().find("linked_saxpy"), std::string_view::npos);
  EXPECT_TRUE(r.diagnostics.empty());
}

TEST(Link, LtoIrWithPtx) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  Program lib = library_program();
  lib.options.relocatable_device_code = true;
  const Artifact ptx = compile_or_fail(lib, Target::for_arch(kArch, ImageKind::ptx));
  const LinkResult r = link(job_of({caller_ltoir(), LinkInput::from_artifact(ptx, "scale_add.ptx")}), cubin_target());
  ASSERT_TRUE(r.ok()) << r.error().what();
  EXPECT_TRUE(is_elf(r.artifact->image()));
}

TEST(Link, RelocatableCubins) {
  KILN_SKIP_UNDER_EMULATOR("the toolkit on this machine (/usr/local/cuda) is x86_64's: an aarch64 process cannot load its NVRTC or nvJitLink, and there is no arm64 nvJitLink (CUDA 11.8 has none)");
  Program lib = library_program(), caller = caller_program();
  lib.options.relocatable_device_code = caller.options.relocatable_device_code = true;
  const LinkResult r = link(job_of({LinkInput::from_artifact(compile_or_fail(caller, cubin_target()), "caller.cubin"),
                                    LinkInput::from_artifact(compile_or_fail(lib, cubin_target()), "lib.cubin")}),
                            cubin_target());
  ASSERT_TRUE(r.ok()) << r.error().what();
  EXPECT_TRUE(is_elf(r.artifact->image()));
  EXPECT_NE(r.artifact->image().find("linked_saxpy"), std::string_view::npos);
}

TEST(Link, LtoToPtx) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  const LinkResult r = link(job_of({caller_ltoir(), library_ltoir()}), Target::for_arch(kArch, ImageKind::ptx));
  ASSERT_TRUE(r.ok()) << r.error().what();
  EXPECT_EQ(r.artifact->kind(), ImageKind::ptx);
  EXPECT_NE(r.artifact->image().find(".entry linked_saxpy"), std::string_view::npos) << r.artifact->image();
  // LTO inlined the library's function: no call is left.
  EXPECT_EQ(r.artifact->image().find("call"), std::string_view::npos) << r.artifact->image();
}

TEST(Link, InputFromFileGuessesItsKind) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  const fs::path file = fs::temp_directory_path() / ("kiln-link-" + std::to_string(::getpid()) + ".ltoir");
  const Artifact lib = compile_or_fail(library_program(), lto_target());
  kiln::testing::write_all(file, std::string(lib.image()));
  const LinkInput in = LinkInput::from_file(file);
  EXPECT_EQ(in.kind(), LinkInputKind::ltoir);
  EXPECT_EQ(in.name(), file.filename().string());
  EXPECT_EQ(in.bytes(), lib.image());
  const LinkResult r = link(job_of({caller_ltoir(), in}), cubin_target());
  EXPECT_TRUE(r.ok()) << r.error().what();
  fs::remove(file);
  EXPECT_THROW(LinkInput::from_file(file), kiln::Error);                   // gone
  EXPECT_THROW(LinkInput::from_file("lib.unknown-kind"), kiln::Error);     // no kind
}

// ---------------------------------------------------------------- link errors

TEST(LinkErrors, UndefinedSymbolUnderLtoNamesTheReferencingInput) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  const LinkInput lonely =
      LinkInput::from_artifact(compile_or_fail(program_of("lonely.cu", kUndefinedCallerSource), lto_target()), "lonely.ltoir");
  const LinkResult r = link(job_of({library_ltoir(), lonely}, "undefined"), cubin_target());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status, NVJITLINK_ERROR_PTX_COMPILE);
  ASSERT_EQ(r.diagnostics.size(), 1u) << r.log;
  const LinkDiagnostic& d = r.diagnostics[0];
  EXPECT_EQ(d.problem, LinkProblem::undefined_symbol);
  EXPECT_EQ(d.symbol, "nobody_defines_this");
  EXPECT_EQ(d.inputs, std::vector<std::string>{"lonely.ltoir"});  // not the library
  const kiln::Error e = r.error();
  EXPECT_TRUE(e.is(Errc::link_failed));
  const std::string what = e.what();
  EXPECT_NE(what.find("lonely.ltoir: fatal error: undefined symbol 'nobody_defines_this'"), std::string::npos) << what;
  EXPECT_NE(what.find("NVJITLINK_ERROR_PTX_COMPILE"), std::string::npos) << what;
  EXPECT_THROW(r.value(), kiln::Error);
}

// nvJitLink 13.0 itself leaks 126,850 bytes in 67 allocations on this failed non-LTO link when it is
// loaded with dlopen (a 20-line program calling it through dlsym shows the same numbers under
// LeakSanitizer); kiln destroys the handle. test_jit_cpu runs without the leak check under the
// sanitizers (tests/jit/CMakeLists.txt), so this is noted, not hidden.
TEST(LinkErrors, UndefinedSymbolWithoutLtoNamesTheInput) {
  KILN_SKIP_UNDER_EMULATOR("the toolkit on this machine (/usr/local/cuda) is x86_64's: an aarch64 process cannot load its NVRTC or nvJitLink, and there is no arm64 nvJitLink (CUDA 11.8 has none)");
  Program lonely = program_of("lonely.cu", kUndefinedCallerSource);
  lonely.options.relocatable_device_code = true;
  const LinkInput ptx = LinkInput::from_artifact(compile_or_fail(lonely, Target::for_arch(kArch, ImageKind::ptx)), "lonely.ptx");
  const LinkResult r = link(job_of({ptx}), cubin_target());
  ASSERT_FALSE(r.ok());
  ASSERT_FALSE(r.diagnostics.empty()) << r.log;
  EXPECT_EQ(r.diagnostics[0].problem, LinkProblem::undefined_symbol);
  EXPECT_EQ(r.diagnostics[0].symbol, "nobody_defines_this");
  EXPECT_EQ(r.diagnostics[0].inputs, std::vector<std::string>{"lonely.ptx"});
}

TEST(LinkErrors, DuplicateSymbolNamesBothInputs) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  const LinkInput second = LinkInput::from_artifact(
      compile_or_fail(program_of("second.cu", kSecondDefinitionSource), lto_target()), "second.ltoir");
  const LinkResult r = link(job_of({library_ltoir(), second, caller_ltoir()}, "duplicate"), cubin_target());
  ASSERT_FALSE(r.ok());
  ASSERT_FALSE(r.diagnostics.empty()) << r.log;
  const LinkDiagnostic& d = r.diagnostics[0];
  EXPECT_EQ(d.problem, LinkProblem::duplicate_symbol) << r.log;
  EXPECT_EQ(d.symbol, "scale_add");
  const std::set<std::string> named(d.inputs.begin(), d.inputs.end());
  EXPECT_TRUE(named.count("scale_add.ltoir") && named.count("second.ltoir")) << d.format();
  EXPECT_NE(std::string(r.error().what()).find("symbol 'scale_add' is defined more than once"), std::string::npos)
      << r.error().what();
}

TEST(LinkErrors, InputThatIsNotItsKindIsNamed) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  const LinkResult r =
      link(job_of({LinkInput::from_bytes(LinkInputKind::ltoir, "junk.ltoir", "not LTO-IR at all"), caller_ltoir()}),
           cubin_target());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status, 0);
  ASSERT_FALSE(r.diagnostics.empty());
  EXPECT_NE(std::find(r.diagnostics[0].inputs.begin(), r.diagnostics[0].inputs.end(), "junk.ltoir"),
            r.diagnostics[0].inputs.end())
      << format_link_diagnostics(r.diagnostics);
}

TEST(LinkErrors, RefusedBeforeNvJitLink) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  const LinkInput lib = library_ltoir();
  auto expect_refused = [](const LinkJob& job, const Target& target, Errc code) {
    try {
      link(job, target);
      ADD_FAILURE() << "accepted";
    } catch (const kiln::Error& e) {
      EXPECT_TRUE(e.is(code)) << e.what();
    }
  };
  expect_refused(job_of({}), cubin_target(), Errc::invalid_argument);
  expect_refused(job_of({LinkInput{}}), cubin_target(), Errc::invalid_argument);
  expect_refused(job_of({lib}), lto_target(), Errc::invalid_argument);
  LinkJob o2 = job_of({lib});
  o2.options.optimization_level = 2;
  expect_refused(o2, cubin_target(), Errc::invalid_argument);
  LinkJob no_lto = job_of({lib});
  no_lto.options.lto = false;
  expect_refused(no_lto, cubin_target(), Errc::invalid_argument);
}

TEST(LinkErrors, UnknownOptionIsNvJitLinksError) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  LinkJob job = job_of({library_ltoir()});
  job.options.extra = {"-no-such-option"};
  try {
    link(job, cubin_target());
    FAIL() << "nvJitLink accepted -no-such-option";
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(Domain::nvjitlink, NVJITLINK_ERROR_UNRECOGNIZED_OPTION)) << e.what();
    EXPECT_EQ(e.call(), "nvJitLinkCreate");
    EXPECT_NE(std::string(e.what()).find("-no-such-option"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------- the link key

TEST(LinkKey, ChangesWithEveryInputAndOption) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  const LinkInput lib = library_ltoir(), caller = caller_ltoir();
  const LinkKeyContext ctx{13000, {}};
  const LinkJob base = job_of({caller, lib});
  const CacheKey k = link_key(base, cubin_target(), ctx);
  EXPECT_EQ(k, link_key(job_of({caller, lib}), cubin_target(), ctx)) << "the same job, another key";

  std::vector<std::pair<std::string, CacheKey>> variants;
  auto add = [&](std::string what, const LinkJob& job, const Target& t = cubin_target(), LinkKeyContext c = {13000, {}}) {
    variants.emplace_back(std::move(what), link_key(job, t, c));
  };
  add("order", job_of({lib, caller}));
  add("one input fewer", job_of({caller}));
  add("another input's bytes",
      job_of({caller, LinkInput::from_bytes(LinkInputKind::ltoir, "scale_add.ltoir", std::string(lib.bytes()) + " ")}));
  add("another input's kind", job_of({caller, LinkInput::from_bytes(LinkInputKind::ptx, "scale_add.ltoir", std::string(lib.bytes()))}));
  add("another input's name", job_of({caller, LinkInput::from_artifact(compile_or_fail(library_program(), lto_target()), "renamed")}));
  add("job name", job_of({caller, lib}, "other"));
  LinkJob j;
  j = base, j.options.lto = true, add("lto forced", j);
  j = base, j.options.optimization_level = 0, add("-O0", j);
  j = base, j.options.line_info = true, add("-lineinfo", j);
  j = base, j.options.debug = true, add("-g", j);
  j = base, j.options.max_registers = 32, add("-maxrregcount", j);
  j = base, j.options.kernels_used = {"linked_saxpy"}, add("-kernels-used", j);
  j = base, j.options.extra = {"-ftz=1"}, add("extra", j);
  j = base, j.lowered_names = {{"f<1>", "_Z1fILi1EEvv"}}, add("lowered names", j);
  add("arch", base, Target::for_arch(80));
  add("ptx output", base, Target::for_arch(kArch, ImageKind::ptx));
  add("nvJitLink version", base, cubin_target(), LinkKeyContext{13010, {}});
  add("nvJitLink file", base, cubin_target(), LinkKeyContext{13000, "/opt/other/libnvJitLink.so.13|1|2|3|4"});
  std::set<CacheKey> seen{k};
  for (const auto& [what, key] : variants) EXPECT_TRUE(seen.insert(key).second) << what << " left the key unchanged";
  // A link key is never a compile key of the same image's program.
  EXPECT_NE(k, cache_key(caller_program(), cubin_target()));
}

TEST(LinkKey, ArtifactInputsAreKnownByTheirCacheKey) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  const Artifact lib = compile_or_fail(library_program(), lto_target());
  EXPECT_EQ(LinkInput::from_artifact(lib).identity(), lib.key());
  EXPECT_EQ(LinkInput::from_artifact(lib).bytes().data(), lib.image().data()) << "copied, not shared";
}

// ---------------------------------------------------------------- version alignment

TEST(LinkVersions, MismatchIsNamedWithItsConsequence) {
  EXPECT_FALSE(kiln::driver::lto_version_mismatch(13000, 13000));
  EXPECT_FALSE(kiln::driver::lto_version_mismatch(13000, 13010));  // a newer nvJitLink reads older LTO-IR
  EXPECT_FALSE(kiln::driver::lto_version_mismatch(0, 13000));      // unknown: nothing to say
  const auto older = kiln::driver::lto_version_mismatch(13010, 13000);
  ASSERT_TRUE(older);
  EXPECT_NE(older->find("nvJitLink 13.0 is older than NVRTC 13.1"), std::string::npos) << *older;
  EXPECT_NE(older->find("linking LTO-IR fails"), std::string::npos) << *older;
  const auto major = kiln::driver::lto_version_mismatch(13000, 12080);
  ASSERT_TRUE(major);
  EXPECT_NE(major->find("different major versions"), std::string::npos) << *major;
}

// ---------------------------------------------------------------- cached links

class LinkCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln-link-cache-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  KernelCacheOptions options() const {
    KernelCacheOptions o;
    o.disk.directory = dir_;
    return o;
  }
  fs::path dir_;
};

TEST_F(LinkCacheTest, MemoryThenDiskThenRelinkAfterCorruption) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  const LinkJob job = job_of({caller_ltoir(), library_ltoir()}, "cached");
  Artifact first;
  {
    KernelCache cache(options());
    first = cache.link(job, cubin_target());
    EXPECT_EQ(first.origin(), Origin::compiled);
    EXPECT_EQ(cache.link(job, cubin_target()).origin(), Origin::memory);
    const CacheStats s = cache.stats();
    EXPECT_EQ(s.links, 1u);
    EXPECT_EQ(s.memory_hits, 1u);
    EXPECT_EQ(s.disk_writes, 1u);
  }
  const fs::path entry = KernelCache(options()).disk()->entry_path(first.key());
  ASSERT_TRUE(fs::exists(entry));
  {
    KernelCache cache(options());  // a new cache: only the disk tier knows the link
    const Artifact again = cache.link(job, cubin_target());
    EXPECT_EQ(again.origin(), Origin::disk);
    EXPECT_EQ(again.image(), first.image());
    EXPECT_EQ(cache.stats().links, 0u);
  }
  // One byte of the payload flipped: detected, removed, linked again.
  std::string bytes = kiln::testing::read_all(entry);
  bytes[bytes.size() - 10] ^= 0x40;
  kiln::testing::write_all(entry, bytes);
  {
    KernelCache cache(options());
    const Artifact relinked = cache.link(job, cubin_target());
    EXPECT_EQ(relinked.origin(), Origin::compiled);
    EXPECT_EQ(relinked.image(), first.image());
    const CacheStats s = cache.stats();
    EXPECT_EQ(s.corrupt_entries, 1u);
    EXPECT_EQ(s.links, 1u);
  }
  EXPECT_EQ(KernelCache(options()).link(job, cubin_target()).origin(), Origin::disk);  // stored again
}

TEST_F(LinkCacheTest, FailedLinkIsNotCachedAndThrowsWithDiagnostics) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  KernelCache cache(options());
  const LinkInput lonely =
      LinkInput::from_artifact(compile_or_fail(program_of("lonely.cu", kUndefinedCallerSource), lto_target()), "lonely.ltoir");
  const LinkJob job = job_of({lonely});
  const LinkResult r = cache.try_link(job, cubin_target());
  EXPECT_FALSE(r.ok());
  try {
    cache.link(job, cubin_target());
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(Errc::link_failed));
    EXPECT_NE(std::string(e.what()).find("nobody_defines_this"), std::string::npos);
  }
  const CacheStats s = cache.stats();
  EXPECT_EQ(s.link_failures, 2u);
  EXPECT_EQ(s.links, 0u);
  EXPECT_EQ(s.disk_writes, 0u);
}

TEST_F(LinkCacheTest, ConcurrentCallersShareOneLink) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  KernelCacheOptions o = options();
  o.use_disk = false;
  KernelCache cache(o);
  const LinkJob job = job_of({caller_ltoir(), library_ltoir()});
  constexpr int kThreads = 6;
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  std::vector<std::string> images(kThreads);
  for (int i = 0; i < kThreads; ++i)
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      images[i] = std::string(cache.link(job, cubin_target()).image());
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(cache.stats().links, 1u);
  for (const auto& image : images) EXPECT_EQ(image, images[0]);
}

// ---------------------------------------------------------------- device libraries

TEST_F(LinkCacheTest, DeviceLibraryCompilesOnceForManyKernels) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  KernelCache cache(options());
  const DeviceLibrary lib = DeviceLibrary::from_program(library_program(), {{"scale_add.cuh", kLibraryHeader}});
  Program a = program_of("a.cu", kCallerSource);  // gets scale_add.cuh from the library
  Program b = program_of("b.cu", std::string(kCallerSource) + "// another kernel\n");
  const Artifact linked_a = compile_and_link(cache, a, std::span(&lib, 1), cubin_target());
  const Artifact linked_b = compile_and_link(cache, b, std::span(&lib, 1), cubin_target());
  EXPECT_TRUE(is_elf(linked_a.image()));
  EXPECT_NE(linked_a.key(), linked_b.key());
  CacheStats s = cache.stats();
  EXPECT_EQ(s.compiles, 3u) << "the library, then each kernel's own lines";
  EXPECT_EQ(s.links, 2u);
  EXPECT_EQ(compile_and_link(cache, a, std::span(&lib, 1), cubin_target()).origin(), Origin::memory);
  EXPECT_EQ(cache.stats().compiles, 3u);
}

TEST_F(LinkCacheTest, PrebuiltLibraryLinksForItsArchitectureOnly) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  KernelCache cache(options());
  const Artifact built = compile_or_fail(library_program(), lto_target());
  const DeviceLibrary lib =
      DeviceLibrary::from_ltoir("scale_add.ltoir", kArch, std::string(built.image()), {{"scale_add.cuh", kLibraryHeader}});
  EXPECT_TRUE(lib.prebuilt());
  const Artifact linked = compile_and_link(cache, program_of("k.cu", kCallerSource), std::span(&lib, 1), cubin_target());
  EXPECT_TRUE(is_elf(linked.image()));
  EXPECT_EQ(cache.stats().compiles, 1u) << "only the kernel";
  try {
    compile_and_link(cache, program_of("k.cu", kCallerSource), std::span(&lib, 1), Target::for_arch(80));
    FAIL() << "sm_90 LTO-IR linked into sm_80";
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(Errc::invalid_argument));
    EXPECT_NE(std::string(e.what()).find("LTO-IR for sm_90"), std::string::npos) << e.what();
  }
}

TEST_F(LinkCacheTest, LinkedArtifactKeepsTheKernelsLoweredNames) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  KernelCache cache(options());
  const DeviceLibrary lib = DeviceLibrary::from_program(library_program(), {{"scale_add.cuh", kLibraryHeader}});
  Program k = program_of("templated.cu", std::string("#include \"scale_add.cuh\"\n") +
                                             "template <int N> __global__ void scaled(float* y) { y[0] = scale_add(N, y[0], 1.f); }\n");
  k.name_expressions = {"scaled<3>"};
  const Artifact linked = compile_and_link(cache, k, std::span(&lib, 1), cubin_target());
  const std::string& lowered = linked.lowered_name("scaled<3>");
  EXPECT_NE(linked.image().find(lowered), std::string_view::npos) << lowered;
}

// ---------------------------------------------------------------- other processes

std::string child() { return KILN_JIT_CACHE_CHILD; }

TEST_F(LinkCacheTest, NewProcessFindsTheLinkOnDisk) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  const auto first = kiln::testing::run_process({child(), "--link", dir_.string()});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const std::size_t at_first = first.out.find("link: compiled ");
  ASSERT_NE(at_first, std::string::npos) << first.out;
  const auto second = kiln::testing::run_process({child(), "--link", dir_.string()});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(second.out.find("ltoir: disk"), std::string::npos) << second.out;
  const std::size_t at_second = second.out.find("link: disk ");
  ASSERT_NE(at_second, std::string::npos) << second.out;
  EXPECT_EQ(first.out.substr(at_first + 15, 64), second.out.substr(at_second + 11, 64)) << "another key";
  EXPECT_NE(first.out.find("nvjitlink_mapped=1"), std::string::npos) << first.out;
  EXPECT_NE(second.out.find("nvjitlink_mapped=0"), std::string::npos) << "a link-cache hit loaded nvJitLink: " << second.out;
}

TEST_F(LinkCacheTest, WithoutNvJitLinkCompilesWorkAndLinksSaySo) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  kiln::testing::ProcessOptions env;
  env.set_env = {{"KILN_NVJITLINK_PATH", "/nonexistent/kiln/libnvJitLink.so.13"}};
  const auto r = kiln::testing::run_process({child(), "--link", dir_.string()}, env);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("ltoir: compiled"), std::string::npos) << r.out << r.err;
  EXPECT_EQ(r.out.find("link:"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("KILN_ERROR_NVJITLINK_NOT_FOUND"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("KILN_NVJITLINK_PATH=/nonexistent/kiln/libnvJitLink.so.13"), std::string::npos) << r.err;
}

}  // namespace
