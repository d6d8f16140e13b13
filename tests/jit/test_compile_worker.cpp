// CompileWorker and CompileWorkerPool: NVRTC in a real child process (kiln-compile-worker), with
// results identical to in-process compiles, time limits enforced by killing the process, crashes
// reported and recovered from, and the no-ASLR option that lets a PCH file made by one process
// load in another.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "kernels.hpp"
#include "kiln/jit/compile_worker.hpp"
#include "kiln/jit/compile_worker_pool.hpp"
#include "kiln/jit/kernel_cache.hpp"
#include "kiln/jit/policy_error.hpp"
#include "support/compile_bomb.hpp"
#include "support/error_message.hpp"
#include "support/process.hpp"
#include "support/nvrtc_compile.hpp"

namespace {

using namespace kiln::jit;
using namespace std::chrono_literals;
using kiln::Errc;
using kiln::Error;
namespace fs = std::filesystem;

const Target kSm90 = Target::for_arch(90);

Program program(std::string name, std::string source) {
  Program p;
  p.name = std::move(name);
  p.source = std::move(source);
  return p;
}

// A new CUB kernel body: a compile that takes hundreds of milliseconds at the very least.
Program cub_program(int variant) {
  std::string source = test_kernels::kCubReduce;
  source.replace(source.find("*out = total;"), 13, "*out = total + " + std::to_string(variant) + ";");
  return program("cub.cu", source);
}

bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

using kiln::testing::error_of;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

void expect_same_result(const CompileResult& in_process, const CompileResult& in_worker) {
  ASSERT_EQ(in_process.ok(), in_worker.ok());
  EXPECT_EQ(in_process.program_name, in_worker.program_name);
  EXPECT_EQ(in_process.target, in_worker.target);
  EXPECT_EQ(in_process.log, in_worker.log);
  ASSERT_EQ(in_process.diagnostics.size(), in_worker.diagnostics.size());
  for (std::size_t i = 0; i < in_process.diagnostics.size(); ++i)
    EXPECT_EQ(in_process.diagnostics[i].format(), in_worker.diagnostics[i].format());
  if (!in_process.ok()) {
    EXPECT_STREQ(in_process.error().what(), in_worker.error().what());
    return;
  }
  const Artifact &a = *in_process.artifact, &b = *in_worker.artifact;
  EXPECT_EQ(a.kind(), b.kind());
  EXPECT_EQ(a.arch(), b.arch());
  EXPECT_EQ(a.image(), b.image());  // byte for byte
  EXPECT_EQ(a.lowered_names(), b.lowered_names());
  EXPECT_EQ(a.key(), b.key());
  EXPECT_EQ(b.origin(), Origin::compiled);
  EXPECT_GT(b.compile_time().count(), 0);
}

TEST(CompileWorker, ResultsAreIdenticalToInProcessCompiles) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetLTOIR", "LTO-IR");
  CompileWorker worker;
  EXPECT_GT(worker.pid(), 0);
  EXPECT_NE(worker.pid(), ::getpid());
  EXPECT_FALSE(worker.aslr_disabled());

  Program templated = program("fill.cu", test_kernels::kTemplated);
  templated.name_expressions = {"fill<3>", "fill<7>"};
  templated.options.defines = {"UNUSED=1"};
  templated.options.line_info = true;
  templated.headers["extra.h"] = "#define EXTRA 1\n";
  expect_same_result(compile(templated, kSm90), worker.compile(templated, kSm90));
  EXPECT_EQ(worker.compile(templated, kSm90).artifact->lowered_name("fill<3>"), "_Z4fillILi3EEvPi");

  const Target ptx = Target::for_arch(80, ImageKind::ptx);
  const Program saxpy = program("saxpy.cu", test_kernels::kSaxpy);
  expect_same_result(compile(saxpy, ptx), worker.compile(saxpy, ptx));
  const Target lto = Target::for_arch(90, ImageKind::ltoir);  // LTO-IR crosses the protocol too
  expect_same_result(compile(saxpy, lto), worker.compile(saxpy, lto));
  EXPECT_EQ(worker.compile(saxpy, lto).artifact->kind(), ImageKind::ltoir);

  // A warning travels with the artifact; an error with its line and column.
  const Program warns = program("warns.cu", "__global__ void k() { int unused = 1; }\n");
  expect_same_result(compile(warns, kSm90), worker.compile(warns, kSm90));
  const Program broken = program("broken.cu", "\n\n__global__ void k() { undeclared_name = 1; }\n");
  const CompileResult rejected = worker.compile(broken, kSm90);
  ASSERT_FALSE(rejected.ok());
  EXPECT_TRUE(contains(rejected.error().what(), "broken.cu:3:")) << rejected.error().what();
  expect_same_result(compile(broken, kSm90), rejected);
  EXPECT_EQ(worker.starts(), 1u);  // one long-lived process served them all
}

TEST(CompileWorker, ErrorsThrownInTheWorkerArriveWhole) {
  KILN_SKIP_UNDER_EMULATOR("kiln starts its own compile worker (kiln-compile-worker), which QEMU's user mode cannot follow into without binfmt_misc");
  CompileWorker worker;
  Program nul = program("nul.cu", std::string("__global__ void k() {}\n") + '\0' + "garbage");
  const Error local = error_of([&] { compile(nul, kSm90); });
  const Error remote = error_of([&] { worker.compile(nul, kSm90); });
  EXPECT_TRUE(remote.is(Errc::invalid_argument));
  EXPECT_EQ(remote.detail(), local.detail());
  EXPECT_TRUE(contains(remote.detail(), "NUL byte")) << remote.what();

  Program bad_define = program("d.cu", "__global__ void k() {}\n");
  bad_define.options.max_registers = -4;
  EXPECT_EQ(error_of([&] { worker.compile(bad_define, kSm90); }).detail(),
            error_of([&] { compile(bad_define, kSm90); }).detail());
  // The worker is still the same process: a thrown error does not cost a restart.
  EXPECT_EQ(worker.starts(), 1u);
  EXPECT_TRUE(worker.compile(program("ok.cu", test_kernels::kSaxpy), kSm90).ok());
}

TEST(CompileWorker, CompilePastItsTimeLimitIsKilledAndTheNextOneWorks) {
  KILN_SKIP_UNDER_EMULATOR("kiln starts its own compile worker (kiln-compile-worker), which QEMU's user mode cannot follow into without binfmt_misc");
  CompileWorker worker;
  const pid_t first = worker.pid();
  const auto start = std::chrono::steady_clock::now();
  const Error e = error_of([&] { worker.compile(cub_program(1), kSm90, {}, 50ms); });
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(e.is(Errc::timeout)) << e.what();
  EXPECT_TRUE(contains(e.detail(), "program 'cub.cu' for sm_90")) << e.what();
  EXPECT_TRUE(contains(e.detail(), "time limit of 50 ms")) << e.what();
  EXPECT_TRUE(contains(e.detail(), "killed")) << e.what();
  EXPECT_LT(waited, 5s);  // it did not wait for NVRTC to finish on its own
  EXPECT_EQ(worker.kills(), 1u);
  EXPECT_EQ(worker.pid(), 0);
  EXPECT_FALSE(process_exists(first));  // killed and reaped: no zombie left behind

  const CompileResult next = worker.compile(program("saxpy.cu", test_kernels::kSaxpy), kSm90, {}, 60s);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(worker.starts(), 2u);
  EXPECT_NE(worker.pid(), first);
}

TEST(CompileWorker, WorkerThatDiedWhileIdleIsReplacedSilently) {
  KILN_SKIP_UNDER_EMULATOR("kiln starts its own compile worker (kiln-compile-worker), which QEMU's user mode cannot follow into without binfmt_misc");
  CompileWorker worker;
  const pid_t first = worker.pid();
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  while (process_exists(first) && ::waitpid(first, nullptr, WNOHANG) == 0) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(worker.compile(program("saxpy.cu", test_kernels::kSaxpy), kSm90).ok());
  EXPECT_EQ(worker.starts(), 2u);
  EXPECT_NE(worker.pid(), first);
}

TEST(CompileWorker, WorkerThatCrashesDuringACompileIsReportedAndRestarted) {
  KILN_SKIP_UNDER_EMULATOR("kiln starts its own compile worker (kiln-compile-worker), which QEMU's user mode cannot follow into without binfmt_misc");
  CompileWorker worker;
  const pid_t first = worker.pid();
  auto running = std::async(std::launch::async, [&] { return worker.compile(cub_program(2), kSm90); });
  while (!worker.compiling()) std::this_thread::sleep_for(100us);
  // As if NVRTC hit an assertion (SIGABRT: sanitizers turn SIGSEGV into an exit status).
  ASSERT_EQ(::kill(first, SIGABRT), 0);
  const Error e = error_of([&] { running.get(); });
  EXPECT_TRUE(e.is(Errc::internal)) << e.what();
  EXPECT_TRUE(contains(e.detail(), "pid " + std::to_string(first))) << e.what();
  EXPECT_TRUE(contains(e.detail(), "died of signal 6 (Aborted)")) << e.what();
  EXPECT_TRUE(contains(e.detail(), "program 'cub.cu'")) << e.what();
  EXPECT_EQ(worker.deaths(), 1u);
  EXPECT_FALSE(process_exists(first));

  EXPECT_TRUE(worker.compile(program("saxpy.cu", test_kernels::kSaxpy), kSm90).ok());
  EXPECT_EQ(worker.starts(), 2u);
}

TEST(CompileWorker, MissingOrWrongExecutablesAreNamed) {
  KILN_SKIP_UNDER_EMULATOR("kiln starts its own compile worker (kiln-compile-worker), which QEMU's user mode cannot follow into without binfmt_misc");
  CompileWorkerOptions missing;
  missing.executable = "/nonexistent/kiln-compile-worker";
  Error e = error_of([&] { CompileWorker w(missing); });
  EXPECT_TRUE(e.is(Errc::invalid_argument));
  EXPECT_TRUE(contains(e.detail(), "'/nonexistent/kiln-compile-worker' cannot be run")) << e.what();

  CompileWorkerOptions exits;  // runs, but says nothing and exits
  exits.executable = "/bin/true";
  e = error_of([&] { CompileWorker w(exits); });
  EXPECT_TRUE(contains(e.detail(), "'/bin/true'")) << e.what();
  EXPECT_TRUE(contains(e.detail(), "ended before reporting ready (exit status 0")) << e.what();

  CompileWorkerOptions garbage;  // writes something that is not a greeting
  garbage.executable = "/bin/sh";
  garbage.arguments = {"-c", "printf 'not a kiln worker at all' >&3; exec sleep 5"};
  e = error_of([&] { CompileWorker w(garbage); });
  EXPECT_TRUE(contains(e.detail(), "other than a kiln compile worker's greeting")) << e.what();

  CompileWorkerOptions silent;  // never answers
  silent.executable = "/bin/sh";
  silent.arguments = {"-c", "exec sleep 30"};
  silent.start_timeout = 200ms;
  const auto start = std::chrono::steady_clock::now();
  e = error_of([&] { CompileWorker w(silent); });
  EXPECT_TRUE(e.is(Errc::timeout)) << e.what();
  EXPECT_TRUE(contains(e.detail(), "did not report ready within 200 ms")) << e.what();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

TEST(CompileWorker, EnvironmentOverrideIsExclusive) {
  ASSERT_EQ(::setenv("KILN_COMPILE_WORKER", "/nonexistent/worker-from-env", 1), 0);
  const Error e = error_of([] { CompileWorker::default_executable(); });
  ::unsetenv("KILN_COMPILE_WORKER");
  EXPECT_TRUE(contains(e.detail(), "$KILN_COMPILE_WORKER names '/nonexistent/worker-from-env'")) << e.what();
  EXPECT_TRUE(fs::exists(CompileWorker::default_executable()));
}

TEST(CompileWorker, WorkerBinaryRunByHandPrintsUsage) {
  const auto r = kiln::testing::run_process({CompileWorker::default_executable().string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "usage:")) << r.err;
  EXPECT_EQ(kiln::testing::run_process({CompileWorker::default_executable().string(), "--fd", "x"}).exit_code, 2);
}

// NVRTC reuses a PCH file only at the address its heap had in the process that wrote it: with
// ASLR on, a new process ignores the file (warning 20282); two no-ASLR workers share it. The file
// outlives the worker that made it (NVRTC would delete it at a normal exit).
TEST(CompileWorker, NoAslrWorkerLoadsAPchWrittenByAnotherProcess) {
  KILN_SKIP_UNLESS_NVRTC_HAS("nvrtcGetPCHHeapSize", "automatic precompiled headers (-pch)");
  const fs::path pch = fs::temp_directory_path() / ("kiln-worker-pch-" + std::to_string(::getpid()));
  fs::remove_all(pch);
  fs::create_directories(pch);
  CompileSettings settings;
  settings.pch_dir = pch.string();
  auto verbose_cub = [](int variant) {
    Program p = cub_program(variant);
    p.options.extra = {"--pch-messages=true", "--pch-verbose=true"};  // NVRTC says what it did
    return p;
  };
  CompileWorkerOptions no_aslr;
  no_aslr.disable_aslr = true;
  pid_t creator_pid = 0;
  {
    CompileWorker creator(no_aslr);
    creator_pid = creator.pid();
    ASSERT_TRUE(creator.aslr_disabled());
    const CompileResult created = creator.compile(verbose_cub(10), kSm90, settings);
    ASSERT_TRUE(created.ok());
    EXPECT_TRUE(contains(created.log, "creating precompiled header file")) << created.log;
  }
  EXPECT_FALSE(process_exists(creator_pid));
  ASSERT_FALSE(fs::is_empty(pch)) << "the PCH file did not outlive its worker";

  CompileWorker reuser(no_aslr);  // a new process, ASLR off: the file loads
  const CompileResult reused = reuser.compile(verbose_cub(12), kSm90, settings);
  ASSERT_TRUE(reused.ok());
  EXPECT_TRUE(contains(reused.log, "using precompiled header file")) << reused.log;
  EXPECT_FALSE(contains(reused.log, "20282")) << reused.log;
  CompileWorker randomised;  // ASLR on: the file is refused (and overwritten: keep such
                             // workers away from a no-ASLR PCH folder)
  const CompileResult ignored = randomised.compile(verbose_cub(11), kSm90, settings);
  ASSERT_TRUE(ignored.ok());
  EXPECT_TRUE(contains(ignored.log, "20282")) << ignored.log;

  EXPECT_LT(reused.artifact->compile_time(), ignored.artifact->compile_time());
  fs::remove_all(pch);
}

TEST(CompileWorkerPool, CompilesInParallelOnUpToNProcesses) {
  KILN_SKIP_UNDER_EMULATOR("kiln starts its own compile worker (kiln-compile-worker), which QEMU's user mode cannot follow into without binfmt_misc");
  CompileWorkerPool pool({}, 2);
  std::vector<std::future<CompileResult>> results;
  for (int i = 0; i < 6; ++i)
    results.push_back(std::async(std::launch::async, [&pool, i] {
      return pool.compile(program("p.cu", std::string(test_kernels::kSaxpy) + "// " + std::to_string(i)), kSm90);
    }));
  for (auto& r : results) EXPECT_TRUE(r.get().ok());
  const CompileWorkerPoolStats s = pool.stats();
  EXPECT_GE(s.processes, 1u);
  EXPECT_LE(s.processes, 2u);
  EXPECT_EQ(s.starts, s.processes);
  EXPECT_EQ(pool.max_processes(), 2u);
}

TEST(CompileWorkerPool, RefusesZeroProcessesAndAMissingWorker) {
  EXPECT_TRUE(contains(error_of([] { CompileWorkerPool p({}, 0); }).detail(), "at least 1 process, not 0"));
  CompileWorkerOptions missing;
  missing.executable = "/nonexistent/worker";
  EXPECT_TRUE(contains(error_of([&] {
                         CompileWorkerPool p(missing, 1);
                         p.compile(program("a.cu", "x"), kSm90);
                       })
                           .detail(),
                       "/nonexistent/worker"));
}

class WorkerCache : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln-worker-cache-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  KernelCacheOptions options(bool worker) const {
    KernelCacheOptions o;
    o.disk.directory = dir_ / (worker ? "worker" : "local");
    if (worker) o.compile_worker = CompileWorkerOptions{};
    return o;
  }
  fs::path dir_;
};

TEST_F(WorkerCache, KernelCacheThroughAWorkerMatchesInProcess) {
  KILN_SKIP_UNDER_EMULATOR("kiln starts its own compile worker (kiln-compile-worker), which QEMU's user mode cannot follow into without binfmt_misc");
  KernelCache local(options(false)), remote(options(true));
  Program p = program("fill.cu", test_kernels::kTemplated);
  p.name_expressions = {"fill<5>"};
  const Artifact a = local.compile(p, kSm90), b = remote.compile(p, kSm90);
  EXPECT_EQ(a.image(), b.image());
  EXPECT_EQ(a.key(), b.key());
  EXPECT_EQ(a.lowered_names(), b.lowered_names());
  EXPECT_EQ(remote.compile(p, kSm90).origin(), Origin::memory);
  EXPECT_TRUE(fs::exists(remote.disk()->entry_path(b.key())));
  const CacheStats s = remote.stats();
  EXPECT_EQ(s.compiles, 1u);
  EXPECT_EQ(s.workers.processes, 1u);
  EXPECT_EQ(local.stats().workers.processes, 0u);
}

TEST_F(WorkerCache, PolicyTimeLimitKillsTheCompileAndNamesTheRule) {
  KILN_SKIP_UNLESS_NVRTC(12000, "the toolkit's CCCL headers (CUB, libcu++, cuda_fp16.h of CUDA 13 refuse an older NVRTC)");
  KernelCacheOptions o = options(true);
  o.policy = SourcePolicy{};
  // The bomb needs tens of seconds anywhere, saxpy well under a second even on a loaded machine
  // (the worker has warmed NVRTC up before it reports ready).
  o.policy->max_compile_time = 3s;
  KernelCache cache(o);
  try {
    cache.compile(program("bomb.cu", kiln::testing::compile_bomb()), kSm90);
    ADD_FAILURE() << "the bomb compiled within 3 s";
  } catch (const PolicyError& e) {
    EXPECT_EQ(e.rule(), "max_compile_time");
    EXPECT_EQ(e.limit(), "3000 ms");
    EXPECT_TRUE(e.is(Errc::timeout)) << e.what();
    EXPECT_EQ(e.detail().rfind("source policy rule 'max_compile_time' (3000 ms): program 'bomb.cu'", 0), 0u) << e.what();
  }
  EXPECT_EQ(cache.stats().workers.kills, 1u);
  EXPECT_EQ(cache.stats().compiles, 0u);
  EXPECT_TRUE(cache.compile(program("saxpy.cu", test_kernels::kSaxpy), kSm90));  // the next one works
  EXPECT_EQ(cache.stats().workers.starts, 2u);
}

TEST_F(WorkerCache, PolicyRefusalIsTypedWithACompileWorker) {
  KILN_SKIP_UNDER_EMULATOR("kiln starts its own compile worker (kiln-compile-worker), which QEMU's user mode cannot follow into without binfmt_misc");
  KernelCacheOptions o = options(true);
  o.policy = SourcePolicy{};
  KernelCache cache(o);
  try {
    cache.compile(program("leak.cu", "#include \"/etc/passwd\"\n"), kSm90);
    ADD_FAILURE() << "an absolute include was let through";
  } catch (const PolicyError& e) {
    EXPECT_EQ(e.rule(), "include");
    EXPECT_TRUE(e.is(Errc::invalid_argument)) << e.what();
  }
  // Checked before any worker compiles; the PTX check of a worker's image is typed too.
  EXPECT_EQ(cache.stats().compiles, 0u);
  o.policy->forbidden_identifiers.clear();
  o.policy->forbidden_ptx_instructions = {"brkpt"};
  KernelCache ptx_checked(o);
  try {
    ptx_checked.compile(program("brk.cu", "extern \"C\" __global__ void k(int* p) { if (*p) asm volatile(\"brkpt;\"); }"),
                        kSm90);
    ADD_FAILURE() << "brkpt was let through";
  } catch (const PolicyError& e) {
    EXPECT_EQ(e.rule(), "forbidden_ptx_instruction") << e.what();
  }
}

TEST_F(WorkerCache, TimeLimitWithoutAWorkerIsRefused) {
  KernelCacheOptions o = options(false);
  o.policy = SourcePolicy{};
  o.policy->max_compile_time = 1s;
  Error e = error_of([&] { KernelCache c(o); });
  EXPECT_TRUE(e.is(Errc::invalid_argument));
  EXPECT_TRUE(contains(e.detail(), "source policy rule 'max_compile_time' (1000 ms) needs KernelCacheOptions::compile_worker"))
      << e.what();
  o.policy->max_compile_time = -5ms;
  e = error_of([&] { KernelCache c(o); });
  EXPECT_TRUE(contains(e.detail(), "'max_compile_time': the limit is negative (-5 ms)")) << e.what();
}

// ---------------------------------------------------------------- memory limit
// A compile worker's memory limit (RLIMIT_AS): NVRTC refuses a compile that needs more as "out of
// memory", the worker lives on, and KernelCache turns it into the source policy's
// max_compile_memory refusal. The limit is set from the worker's own measured peak, so the tests
// hold on any machine: a small kernel fits, a CUB kernel (about 170 MiB more) does not.

Program small_program() { return program("small", "extern \"C\" __global__ void k(int* p) { *p = 1; }"); }

// VmPeak of a process, bytes (0 when unreadable).
std::uint64_t peak_bytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmPeak:", 0) == 0) return std::stoull(line.substr(7)) * 1024;
  return 0;
}

// The address space a worker needs for a small compile, measured on a worker without a limit.
std::uint64_t small_compile_peak() {
  CompileWorker probe;
  EXPECT_TRUE(probe.compile(small_program(), kSm90).ok());
  return peak_bytes(probe.pid());
}

TEST(CompileLimits, AWorkerOverItsMemoryLimitRefusesTheCompileAndLivesOn) {
  KILN_SKIP_UNLESS_NVRTC(12000, "the toolkit's CCCL headers (CUB, libcu++, cuda_fp16.h of CUDA 13 refuse an older NVRTC)");
  if (!CompileWorker::memory_limits_apply()) GTEST_SKIP() << "AddressSanitizer build: no address-space limit";
  const std::uint64_t peak = small_compile_peak();
  ASSERT_GT(peak, 0u);
  CompileWorkerOptions options;
  options.memory_limit_bytes = peak + (48u << 20);
  CompileWorker worker(options);
  EXPECT_TRUE(worker.compile(small_program(), kSm90).ok()) << "a small kernel fits under its measured peak + 48 MiB";
  const pid_t pid = worker.pid();
  CompileResult big = worker.compile(cub_program(0), kSm90);
  ASSERT_FALSE(big.ok()) << "a CUB kernel compiled in " << (options.memory_limit_bytes >> 20) << " MiB";
  EXPECT_NE(format_diagnostics(big.diagnostics).find("out of memory"), std::string::npos)
      << format_diagnostics(big.diagnostics);
  EXPECT_EQ(worker.pid(), pid) << "the worker died instead of refusing the compile";
  EXPECT_TRUE(worker.compile(small_program(), kSm90).ok()) << "the worker cannot compile after running out of memory";
}

TEST(CompileLimits, KernelCacheRefusesByTheMaxCompileMemoryRule) {
  KILN_SKIP_UNLESS_NVRTC(12000, "the toolkit's CCCL headers (CUB, libcu++, cuda_fp16.h of CUDA 13 refuse an older NVRTC)");
  if (!CompileWorker::memory_limits_apply()) GTEST_SKIP() << "AddressSanitizer build: no address-space limit";
  const std::uint64_t peak = small_compile_peak();
  KernelCacheOptions o;
  o.use_disk = false;
  o.compile_worker = CompileWorkerOptions{};
  o.policy = SourcePolicy{};
  o.policy->max_compile_memory = peak + (48u << 20);
  KernelCache cache(o);
  EXPECT_NO_THROW(cache.compile(small_program(), kSm90));
  try {
    cache.compile(cub_program(0), kSm90);
    FAIL() << "a CUB kernel compiled under the memory limit";
  } catch (const PolicyError& e) {
    EXPECT_EQ(e.rule(), "max_compile_memory");
    EXPECT_EQ(e.limit(), std::to_string(o.policy->max_compile_memory >> 20) + " MiB");
    EXPECT_TRUE(e.is(Errc::invalid_argument)) << e.what();
    EXPECT_NE(e.detail().find("source policy rule 'max_compile_memory'"), std::string::npos) << e.what();
    EXPECT_NE(e.detail().find("program 'cub.cu'"), std::string::npos) << e.what();
  }
}

TEST(CompileLimits, AMemoryLimitNeedsACompileWorker) {
  KernelCacheOptions o;
  o.use_disk = false;
  o.policy = SourcePolicy{};
  o.policy->max_compile_memory = 1u << 30;
  try {
    KernelCache cache(o);
    FAIL() << "accepted a memory limit it cannot enforce";
  } catch (const Error& e) {
    EXPECT_NE(e.detail().find("max_compile_memory"), std::string::npos) << e.what();
  }
}

TEST(CompileLimits, ALimitTooSmallForNvrtcSaysSo) {
  if (!CompileWorker::memory_limits_apply()) GTEST_SKIP() << "AddressSanitizer build: no address-space limit";
  CompileWorkerOptions options;
  options.memory_limit_bytes = 16u << 20;
  try {
    CompileWorker worker(options);  // starts (or fails to), but cannot load NVRTC in 16 MiB
    worker.compile(small_program(), kSm90);
    FAIL() << "compiled in 16 MiB of address space";
  } catch (const Error& e) {
    EXPECT_NE(e.detail().find("memory limit is 16 MiB"), std::string::npos) << e.what();
  }
}

}  // namespace
