// On a GPU: a kernel linked at run time with a device library (LTO-IR through nvJitLink, from the
// link cache's memory and disk tiers) launches and computes what the whole-program kernel does.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "kiln/jit/device_library.hpp"
#include "kiln/jit/kernel_cache.hpp"
#include "link_kernels.hpp"
#include "raw_saxpy.hpp"
#include "support/gpu.hpp"

namespace {

using namespace kiln::jit;
using namespace kiln::jit::test_kernels;
namespace fs = std::filesystem;

class LinkGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln-link-gpu-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  KernelCacheOptions options() const {
    KernelCacheOptions o;
    o.disk.directory = dir_;
    return o;
  }
  fs::path dir_;
};

TEST_F(LinkGpu, LinkedKernelComputesWhatTheWholeProgramDoes) {
  KILN_REQUIRE_GPU();
  const Target target = Target::for_device(0);  // CUBIN for this GPU, or PTX (linked under LTO)
  const DeviceLibrary lib = DeviceLibrary::from_program(library_program(), {{"scale_add.cuh", kLibraryHeader}});

  KernelCache cache(options());
  const Artifact whole = cache.compile(program_of("whole.cu", kWholeProgramSource), target);
  const Artifact linked = compile_and_link(cache, program_of("caller.cu", kCallerSource), std::span(&lib, 1), target);
  ASSERT_EQ(linked.origin(), Origin::compiled);
  EXPECT_EQ(linked.kind(), target.kind);
  const std::string whole_wrong = kiln::testing::run_saxpy_raw(whole.data(), 100000, "linked_saxpy");
  const std::string linked_wrong = kiln::testing::run_saxpy_raw(linked.data(), 100000, "linked_saxpy");
  EXPECT_TRUE(whole_wrong.empty()) << "whole program: " << whole_wrong;
  EXPECT_TRUE(linked_wrong.empty()) << "linked: " << linked_wrong;

  // From the disk tier in a fresh cache: the same image, and it runs too.
  KernelCache fresh(options());
  const Artifact from_disk = compile_and_link(fresh, program_of("caller.cu", kCallerSource), std::span(&lib, 1), target);
  EXPECT_EQ(from_disk.origin(), Origin::disk);
  EXPECT_EQ(from_disk.image(), linked.image());
  EXPECT_EQ(fresh.stats().links, 0u);
  EXPECT_TRUE(kiln::testing::run_saxpy_raw(from_disk.data(), 1000, "linked_saxpy").empty());
}

TEST_F(LinkGpu, PrebuiltLibraryLinksAndRuns) {
  KILN_REQUIRE_GPU();
  Target target = Target::for_device(0);
  KernelCache cache(options());
  const Artifact built = cache.compile(library_program(), Target::for_arch(target.arch, ImageKind::ltoir));
  const DeviceLibrary lib = DeviceLibrary::from_ltoir("scale_add.ltoir", target.arch, std::string(built.image()),
                                                      {{"scale_add.cuh", kLibraryHeader}});
  const Artifact linked = compile_and_link(cache, program_of("caller.cu", kCallerSource), std::span(&lib, 1), target);
  EXPECT_TRUE(kiln::testing::run_saxpy_raw(linked.data(), 4096, "linked_saxpy").empty());
}

}  // namespace
