// `kiln compile` and `kiln cache`, run as real child processes on a private cache folder.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels.hpp"
#include "kiln/jit/compiler.hpp"
#include "kiln/jit/linker.hpp"
#include "support/process.hpp"
#include "support/nvrtc_compile.hpp"

namespace {

using kiln::testing::cli_path;
using kiln::testing::ProcessResult;
using kiln::testing::run_process;
namespace fs = std::filesystem;

// "w3.cu" (built step by step: GCC 12 warns falsely on "w" + std::to_string(i)).
std::string numbered(std::string stem, int i) {
  stem += std::to_string(i);
  stem += ".cu";
  return stem;
}

class CliCompile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln-jit-cli-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "src");
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path write(const std::string& name, const std::string& text) {
    fs::path p = dir_ / "src" / name;
    std::ofstream(p) << text;
    return p;
  }
  ProcessResult kiln(std::vector<std::string> args) {
    args.insert(args.begin(), cli_path());
    return run_process(args, {{{"KILN_CACHE_DIR", (dir_ / "cache").string()}}, {}});
  }
  fs::path dir_;
};

TEST_F(CliCompile, LtoWritesLtoIrThatLinks) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  fs::path file = write("lib.cu", "extern \"C\" __device__ float twice(float x) { return 2.f * x; }\n");
  fs::path out = dir_ / "lib.ltoir";
  ProcessResult r = kiln({"compile", "--lto", file.string(), "--arch", "sm_90", "-o", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("lib.cu: lto_90 ltoir"), std::string::npos) << r.out;
  ASSERT_TRUE(fs::exists(out));
  // The file is LTO-IR that nvJitLink links with a kernel calling into it.
  kiln::jit::Program caller;
  caller.name = "caller.cu";
  caller.source = "extern \"C\" __device__ float twice(float);\n"
                  "extern \"C\" __global__ void k(float* p) { p[0] = twice(p[0]); }\n";
  kiln::jit::LinkJob job;
  job.inputs = {kiln::jit::LinkInput::from_artifact(
                    kiln::jit::compile(caller, kiln::jit::Target::for_arch(90, kiln::jit::ImageKind::ltoir)).value()),
                kiln::jit::LinkInput::from_file(out)};
  EXPECT_TRUE(kiln::jit::link(job, kiln::jit::Target::for_arch(90)).ok());
  // --lto with --ptx is bad usage.
  EXPECT_EQ(kiln({"compile", "--lto", "--ptx", file.string(), "--arch", "sm_90"}).exit_code, 2);
}

TEST_F(CliCompile, CompilesThenHitsTheDiskInANewProcess) {
  fs::path file = write("fill.cu", kiln::jit::test_kernels::kTemplated);
  fs::path out = dir_ / "fill.cubin";
  ProcessResult r = kiln({"compile", file.string(), "--arch", "sm_90", "--name-expr", "fill<3>", "-o", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("fill.cu: sm_90 cubin"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("from:    NVRTC"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lowered: fill<3> -> _Z4fillILi3EEvPi"), std::string::npos) << r.out;
  ASSERT_TRUE(fs::exists(out));
  std::ifstream in(out, std::ios::binary);
  char magic[4]{};
  in.read(magic, 4);
  EXPECT_EQ(std::string(magic, 4), "\x7f" "ELF");

  r = kiln({"compile", file.string(), "--arch", "sm_90", "--name-expr", "fill<3>"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("from:    disk cache " + (dir_ / "cache").string()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lowered: fill<3> -> _Z4fillILi3EEvPi"), std::string::npos) << r.out;
}

TEST_F(CliCompile, PtxAndDefines) {
  fs::path file = write("d.cu", "#ifndef N\n#error N missing\n#endif\n__global__ void f(int* o) { *o = N; }\n");
  fs::path out = dir_ / "d.ptx";
  ProcessResult r = kiln({"compile", file.string(), "--arch", "sm_80", "--ptx", "-D", "N=5", "-o", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("compute_80 ptx"), std::string::npos) << r.out;
  std::ifstream in(out);
  std::string ptx((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(ptx.find(".target sm_80"), std::string::npos);
  r = kiln({"compile", file.string(), "--arch", "sm_80"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("d.cu:2:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("N missing"), std::string::npos) << r.err;
}

TEST_F(CliCompile, ErrorsPrintLikeACompilerAndExitOne) {
  KILN_SKIP_UNLESS_NVRTC(12000, "column numbers in NVRTC's diagnostics (NVRTC 11.8 reports the line only)");
  fs::path file = write("bad.cu", "__global__ void f(float* x) {\n  x[0] = z;\n}\n");
  ProcessResult r = kiln({"compile", file.string(), "--arch", "sm_90"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bad.cu:2:10: error: identifier \"z\" is undefined\n    x[0] = z;\n           ^\n"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST_F(CliCompile, BadInputsAreNamed) {
  ProcessResult r = kiln({"compile", (dir_ / "missing.cu").string(), "--arch", "sm_90"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing.cu"), std::string::npos) << r.err;
  fs::path file = write("ok.cu", kiln::jit::test_kernels::kSaxpy);
  r = kiln({"compile", file.string(), "--arch", "banana"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("'banana'"), std::string::npos) << r.err;
  r = kiln({"compile", file.string(), "--ptx", "--cubin", "--arch", "sm_90"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = kiln({"compile"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
}

TEST_F(CliCompile, CacheStatsClearAndPrune) {
  for (int i = 0; i < 3; ++i) {
    std::string source = kiln::jit::test_kernels::kSaxpy;
    source.append("// ").append(std::to_string(i)).append("\n");
    fs::path file = write(numbered("k", i), source);
    ASSERT_EQ(kiln({"compile", file.string(), "--arch", "sm_90"}).exit_code, 0);
  }
  ProcessResult r = kiln({"cache", "stats", "--json", "--verify"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["directory"], (dir_ / "cache").string());
  EXPECT_EQ(j["entries"], 3);
  EXPECT_GT(j["entry_bytes"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(j["corrupt_removed"], 0);
  EXPECT_FALSE(j["fell_back"].get<bool>());

  r = kiln({"cache", "prune", "--max-bytes", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("evicted 3 files"), std::string::npos) << r.out;

  ASSERT_EQ(kiln({"compile", write("again.cu", kiln::jit::test_kernels::kSaxpy).string(), "--arch", "sm_90"}).exit_code, 0);
  r = kiln({"cache", "clear"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("removed 1 files"), std::string::npos) << r.out;
  r = kiln({"cache", "stats"});
  EXPECT_NE(r.out.find("entries:     0"), std::string::npos) << r.out;
}

TEST_F(CliCompile, UnwritableCacheFolderWarns) {
  std::ofstream(dir_ / "file") << "x";
  fs::path file = write("ok.cu", kiln::jit::test_kernels::kSaxpy);
  ProcessResult r = run_process({cli_path(), "compile", file.string(), "--arch", "sm_90"},
                                {{{"KILN_CACHE_DIR", (dir_ / "file" / "cache").string()},
                                  {"TMPDIR", dir_.string()}},
                                 {}});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("kiln: warning: kernel cache folder '" + (dir_ / "file" / "cache").string() +
                       "' is not writable"),
            std::string::npos)
      << r.err;
}

// Issue #11: clearing, pruning and a compile under a small cap followed a link at pch/ and
// deleted files in its target. Now the folder is refused (the fallback is used) and nothing
// behind the link is touched.
TEST_F(CliCompile, ALinkedPchFolderIsNeverDeletedThrough) {
  fs::create_directories(dir_ / "tmp");
  auto run = [&](std::vector<std::string> args, std::string max_bytes = "") {
    args.insert(args.begin(), cli_path());
    kiln::testing::ProcessOptions o{{{"KILN_CACHE_DIR", (dir_ / "cache").string()}, {"TMPDIR", (dir_ / "tmp").string()}},
                                    {}};
    if (!max_bytes.empty()) o.set_env.emplace_back("KILN_CACHE_MAX_BYTES", max_bytes);
    return run_process(args, o);
  };
  fs::path first = write("first.cu", kiln::jit::test_kernels::kSaxpy);
  ASSERT_EQ(run({"compile", first.string(), "--arch", "sm_90"}).exit_code, 0);
  const auto entry_bytes = nlohmann::json::parse(run({"cache", "stats", "--json"}).out)["entry_bytes"].get<std::uint64_t>();
  const fs::path victim = dir_ / "victim";
  fs::create_directories(victim / "deep");
  std::ofstream(victim / "old.pch") << std::string(4000, 'p');
  std::ofstream(victim / "deep" / "precious.txt") << "precious";
  fs::last_write_time(victim / "old.pch", fs::file_time_type::clock::now() - std::chrono::hours(24));
  fs::remove_all(dir_ / "cache" / "pch");
  fs::create_directory_symlink(victim, dir_ / "cache" / "pch");

  for (int i = 0; i < 3; ++i) {  // each over the small cap: evicts
    std::string source = kiln::jit::test_kernels::kSaxpy;
    source.append("// capped ").append(std::to_string(i)).append("\n");
    ProcessResult r = run({"compile", write(numbered("capped", i), source).string(), "--arch", "sm_90"},
                          std::to_string(entry_bytes * 3 / 2));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("is not safe to use ('" + (dir_ / "cache" / "pch").string() + "' is a symbolic link"),
              std::string::npos)
        << r.err;
  }
  EXPECT_EQ(run({"cache", "prune", "--max-bytes", "1"}).exit_code, 0);
  EXPECT_EQ(run({"cache", "clear"}).exit_code, 0);
  run({"cache", "stats", "--verify"});
  EXPECT_TRUE(fs::exists(victim / "old.pch"));
  EXPECT_TRUE(fs::exists(victim / "deep" / "precious.txt"));
}

// `cache stats --verify` skipped FIFOs, folders and unreadable files at entry names (and a FIFO
// hung every compile). Now each is reported, removed, and the exit code says so.
TEST_F(CliCompile, VerifyReportsWhatIsNotAnEntry) {
  fs::path file = write("ok.cu", kiln::jit::test_kernels::kSaxpy);
  ASSERT_EQ(kiln({"compile", file.string(), "--arch", "sm_90"}).exit_code, 0);
  const fs::path folder = dir_ / "cache" / "entries" / "ab";
  fs::create_directories(folder);
  const fs::path fifo = folder / (std::string(64, 'a') + ".kjit");
  const fs::path subfolder = folder / ("ab" + std::string(62, 'b') + ".kjit");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  fs::create_directories(subfolder);
  ProcessResult r = kiln({"cache", "stats", "--verify"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("corrupt:     2 removed"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find(fifo.string() + "' (a FIFO, not a regular file): removed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(subfolder.string() + "' (a folder, not a regular file): removed"), std::string::npos) << r.err;
  EXPECT_EQ(kiln({"cache", "stats", "--verify"}).exit_code, 0);
  EXPECT_NE(kiln({"cache", "stats"}).out.find("entries:     1"), std::string::npos);
}

TEST_F(CliCompile, WarmCompilesAFolderInParallel) {
  for (int i = 0; i < 4; ++i) {
    std::string source = kiln::jit::test_kernels::kSaxpy;
    source.append("// w").append(std::to_string(i)).append("\n");
    write(numbered("w", i), source);
  }
  write("broken.cu", "__global__ void f() { nope; }\n");
  ProcessResult r = kiln({"compile", "--warm", (dir_ / "src").string(), "--arch", "sm_90", "-j", "2"});
  EXPECT_EQ(r.exit_code, 1);  // one file does not compile
  EXPECT_NE(r.out.find("warmed 5 kernel files for sm_90 with 2 threads"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("4 compiled, 0 already on disk, 1 failed"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("broken.cu:1:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("5/5"), std::string::npos) << r.err;
  r = kiln({"compile", "--warm", (dir_ / "src").string(), "--arch", "sm_90"});
  EXPECT_NE(r.out.find("0 compiled, 4 already on disk, 1 failed"), std::string::npos) << r.out;
}

}  // namespace

namespace {

// --worker compiles in a kiln-compile-worker process: same key and image as an in-process compile;
// errors still print like a compiler's; --worker-no-aslr keeps its PCH files in their own folder.
TEST_F(CliCompile, WorkerFlagsCompileInAChildProcess) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetPCHHeapSize", "automatic precompiled headers (-pch)");
  fs::path file = write("saxpy.cu", kiln::jit::test_kernels::kSaxpy);
  ProcessResult local = kiln({"compile", file.string(), "--arch", "sm_90", "--no-disk-cache", "-o", (dir_ / "a").string()});
  ProcessResult remote = kiln({"compile", file.string(), "--arch", "sm_90", "--no-disk-cache", "--worker", "-o",
                               (dir_ / "b").string()});
  ASSERT_EQ(local.exit_code, 0) << local.err;
  ASSERT_EQ(remote.exit_code, 0) << remote.err;
  EXPECT_NE(remote.out.find("from:    NVRTC"), std::string::npos) << remote.out;
  auto key_line = [](const std::string& out) { return out.substr(out.find("key:"), 70); };
  EXPECT_EQ(key_line(local.out), key_line(remote.out));
  auto slurp = [](const fs::path& p) { return std::string(std::istreambuf_iterator<char>(std::ifstream(p, std::ios::binary).rdbuf()), {}); };
  EXPECT_EQ(slurp(dir_ / "a"), slurp(dir_ / "b"));

  fs::path broken = write("broken.cu", "\n__global__ void k() { nope = 1; }\n");
  ProcessResult r = kiln({"compile", broken.string(), "--arch", "sm_90", "--worker-no-aslr", "--pch"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("broken.cu:2:"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::is_directory(dir_ / "cache" / "pch" / "fixed-address"));

  r = kiln({"compile", file.string(), "--arch", "sm_90", "--worker", "--worker-no-aslr"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;  // mutually exclusive: bad usage
}

}  // namespace
