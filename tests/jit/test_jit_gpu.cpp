// On a GPU: an artifact from the cache (CUBIN, then PTX) loads with the raw driver table and runs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <vector>

#include "kernels.hpp"
#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/jit/kernel_cache.hpp"
#include "raw_saxpy.hpp"
#include "support/gpu.hpp"
#include "support/process.hpp"

namespace {

using namespace kiln::jit;
using kiln::driver::check;
using kiln::driver::cuda;
namespace fs = std::filesystem;

// Runs saxpy from `artifact` on device 0 and checks y = 2x + y for 1000 elements.
void run_saxpy(const Artifact& artifact) {
  const std::string wrong = kiln::testing::run_saxpy_raw(artifact.data(), 1000);
  EXPECT_TRUE(wrong.empty()) << wrong;
}

class JitGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln-jit-gpu-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // Compiles once (filling the disk), then returns the copy a fresh cache loads from disk.
  Artifact from_disk(const Target& target) {
    KernelCacheOptions o;
    o.disk.directory = dir_;
    Program p;
    p.source = test_kernels::kSaxpy;
    EXPECT_EQ(KernelCache(o).compile(p, target).origin(), Origin::compiled);
    Artifact a = KernelCache(o).compile(p, target);
    EXPECT_EQ(a.origin(), Origin::disk);
    return a;
  }
  fs::path dir_;
};

TEST_F(JitGpu, CachedCubinForThisDeviceLoadsAndRuns) {
  KILN_REQUIRE_GPU();
  Target t = Target::for_device(0);
  ASSERT_EQ(t.kind, ImageKind::cubin) << t.reason;
  run_saxpy(from_disk(t));
}

TEST_F(JitGpu, CachedPtxLoadsAndRuns) {
  KILN_REQUIRE_GPU();
  Target t = Target::for_device(0);
  t.kind = ImageKind::ptx;
  run_saxpy(from_disk(t));
}

// A CUBIN made in a compile worker process (no ASLR, as a service would run it) loads and runs here.
TEST_F(JitGpu, CubinFromACompileWorkerLoadsAndRuns) {
  KILN_REQUIRE_GPU();
  KernelCacheOptions o;
  o.use_disk = false;
  o.compile_worker = CompileWorkerOptions{};
  o.compile_worker->disable_aslr = true;
  Program p;
  p.source = test_kernels::kSaxpy;
  const Artifact a = KernelCache(o).compile(p, Target::for_device(0));
  EXPECT_EQ(a.origin(), Origin::compiled);
  run_saxpy(a);
}

// A disk hit in a new process, from the cache to a launched kernel, never loads NVRTC: the key and
// Target::for_device read the NVRTC facts record this process left in the cache folder.
TEST_F(JitGpu, DiskHitInANewProcessLaunchesWithoutNvrtc) {
  KILN_REQUIRE_GPU();
  const Target t = Target::for_device(0);
  KernelCacheOptions o;
  o.disk.directory = dir_;
  Program p;
  p.source = test_kernels::kSaxpy;
  ASSERT_EQ(KernelCache(o).compile(p, t).origin(), Origin::compiled);
  kiln::testing::ProcessOptions env;
  env.set_env = {{"KILN_CACHE_DIR", dir_.string()}};
  const auto r = kiln::testing::run_process({KILN_JIT_CACHE_CHILD, "--launch", dir_.string()}, env);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "disk " + t.arch_name() + " nvrtc_loaded=0 nvrtc_mapped=0\n") << r.err;
}

}  // namespace
