// A compile worker's memory limit (RLIMIT_AS): NVRTC refuses a compile that needs more as "out of
// memory", the worker lives on, and KernelCache turns it into the source policy's
// max_compile_memory refusal. The limit is set from the worker's own measured peak, so the test
// holds on any machine: a small kernel fits, a CUB kernel (about 170 MiB more) does not.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "kiln/jit/compile_worker.hpp"
#include "kiln/jit/kernel_cache.hpp"
#include "kiln/driver/error.hpp"

namespace {

using namespace kiln::jit;
using kiln::Error;

const Target kSm90 = Target::for_arch(90);

Program program(std::string name, std::string source) {
  Program p;
  p.name = std::move(name);
  p.source = std::move(source);
  return p;
}

Program small_program() { return program("small", "extern \"C\" __global__ void k(int* p) { *p = 1; }"); }

Program cub_program() {
  return program("cub", "#include <cub/block/block_reduce.cuh>\n"
                        "extern \"C\" __global__ void sum(const float* in, float* out) {\n"
                        "  using R = cub::BlockReduce<float, 256>;\n"
                        "  __shared__ typename R::TempStorage t;\n"
                        "  float v = R(t).Sum(in[threadIdx.x]);\n"
                        "  if (threadIdx.x == 0) *out = v;\n"
                        "}\n");
}

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
  const std::uint64_t peak = small_compile_peak();
  ASSERT_GT(peak, 0u);
  CompileWorkerOptions options;
  options.memory_limit_bytes = peak + (48u << 20);
  CompileWorker worker(options);
  EXPECT_TRUE(worker.compile(small_program(), kSm90).ok()) << "a small kernel fits under its measured peak + 48 MiB";
  const pid_t pid = worker.pid();
  CompileResult big = worker.compile(cub_program(), kSm90);
  ASSERT_FALSE(big.ok()) << "a CUB kernel compiled in " << (options.memory_limit_bytes >> 20) << " MiB";
  EXPECT_NE(format_diagnostics(big.diagnostics).find("out of memory"), std::string::npos)
      << format_diagnostics(big.diagnostics);
  EXPECT_EQ(worker.pid(), pid) << "the worker died instead of refusing the compile";
  EXPECT_TRUE(worker.compile(small_program(), kSm90).ok()) << "the worker cannot compile after running out of memory";
}

TEST(CompileLimits, KernelCacheRefusesByTheMaxCompileMemoryRule) {
  const std::uint64_t peak = small_compile_peak();
  KernelCacheOptions o;
  o.use_disk = false;
  o.compile_worker = CompileWorkerOptions{};
  o.policy = SourcePolicy{};
  o.policy->max_compile_memory = peak + (48u << 20);
  KernelCache cache(o);
  EXPECT_NO_THROW(cache.compile(small_program(), kSm90));
  try {
    cache.compile(cub_program(), kSm90);
    FAIL() << "a CUB kernel compiled under the memory limit";
  } catch (const Error& e) {
    EXPECT_NE(e.detail().find("source policy rule 'max_compile_memory'"), std::string::npos) << e.what();
    EXPECT_NE(e.detail().find("program 'cub'"), std::string::npos) << e.what();
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
