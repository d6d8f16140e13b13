// On a machine without an NVIDIA driver (CI), every path to the driver fails with kiln's clear
// "no driver" error instead of crashing. Where a driver is present these tests have nothing to check.
#include <gtest/gtest.h>

#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/environment.hpp"
#include "kiln/driver/error.hpp"

namespace {

bool driver_present() { return kiln::driver::driver_state().api != nullptr; }

TEST(NoDriver, CudaThrowsDriverNotFound) {
  if (driver_present()) GTEST_SKIP() << "a driver is installed here";
  try {
    kiln::driver::cuda();
    FAIL() << "cuda() returned without a driver";
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(kiln::Errc::driver_not_found));
    const std::string what = e.what();
    EXPECT_NE(what.find("libcuda.so.1"), std::string::npos) << what;
    EXPECT_NE(what.find("kiln doctor"), std::string::npos) << "the hint should point at kiln doctor: " << what;
  }
}

TEST(NoDriver, StateRecordsWhy) {
  if (driver_present()) GTEST_SKIP() << "a driver is installed here";
  const auto& s = kiln::driver::driver_state();
  EXPECT_FALSE(s.library.loaded);
  EXPECT_FALSE(s.library.failure.empty());
  EXPECT_EQ(s.cuda_version, 0);
}

TEST(NoDriver, ProbeReportsNoDriverButStillNvrtcAndToolkit) {
  if (driver_present()) GTEST_SKIP() << "a driver is installed here";
  auto r = kiln::driver::probe_environment();
  EXPECT_FALSE(r.driver.found);
  EXPECT_TRUE(r.nvrtc.found);
  EXPECT_TRUE(r.toolkit_include);
  EXPECT_TRUE(r.gpus.empty());
  EXPECT_FALSE(r.healthy());
  auto it = std::find_if(r.problems.begin(), r.problems.end(), [](auto& p) { return p.id == "no_driver"; });
  ASSERT_NE(it, r.problems.end());
  EXPECT_FALSE(it->hint.empty());
}

}  // namespace
