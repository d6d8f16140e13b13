// jit::Target: parsing and the automatic choice between CUBIN and PTX.
#include <gtest/gtest.h>

#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/jit/target.hpp"

namespace {

using namespace kiln::jit;
using kiln::Errc;

const std::vector<int> kArchs{75, 80, 86, 87, 88, 89, 90, 100, 103, 110, 120, 121};

TEST(Target, ParsesTheUsualSpellings) {
  EXPECT_EQ(Target::parse("sm_90"), (Target{ImageKind::cubin, 90, {}}));
  EXPECT_EQ(Target::parse("compute_80"), (Target{ImageKind::ptx, 80, {}}));
  EXPECT_EQ(Target::parse("86"), (Target{ImageKind::cubin, 86, {}}));
  EXPECT_EQ(Target::parse("12.0"), (Target{ImageKind::cubin, 120, {}}));
  EXPECT_EQ(Target::parse("sm_90").arch_name(), "sm_90");
  EXPECT_EQ(Target::parse("compute_90").nvrtc_option(), "--gpu-architecture=compute_90");
  for (const char* bad : {"", "sm_", "sm_9x", "gfx90a", "compute_-1", "0"}) {
    try {
      Target::parse(bad);
      FAIL() << bad;
    } catch (const kiln::Error& e) {
      EXPECT_TRUE(e.is(Errc::invalid_argument));
      EXPECT_NE(std::string(e.what()).find("'" + std::string(bad) + "'"), std::string::npos) << e.what();
    }
  }
}

TEST(Target, ListedArchitectureGetsCubin) {
  Target t = Target::choose(90, kArchs, 13000, 13000);
  EXPECT_EQ(t, (Target{ImageKind::cubin, 90, {}}));
  EXPECT_NE(t.reason.find("CUBIN for sm_90"), std::string::npos) << t.reason;
}

TEST(Target, UnlistedArchitectureGetsPtxOfTheHighestOlderOne) {
  Target t = Target::choose(95, kArchs, 13000, 13000);
  EXPECT_EQ(t, (Target{ImageKind::ptx, 90, {}}));
  EXPECT_NE(t.reason.find("PTX for compute_90"), std::string::npos) << t.reason;
  EXPECT_NE(t.reason.find("9.5"), std::string::npos) << t.reason;
}

TEST(Target, PtxFromAnNvrtcNewerThanTheDriverIsRefused) {
  try {
    Target::choose(95, kArchs, 12040, 13000);
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(Errc::version_mismatch));
    EXPECT_NE(std::string(e.what()).find("CUDA_ERROR_UNSUPPORTED_PTX_VERSION"), std::string::npos) << e.what();
  }
  // CUBIN does not go through the driver's PTX JIT: fine with the same versions.
  EXPECT_EQ(Target::choose(90, kArchs, 12040, 13000).kind, ImageKind::cubin);
}

TEST(Target, DeviceOlderThanEveryNvrtcArchitectureIsRefused) {
  try {
    Target::choose(60, kArchs, 13000, 13000);
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(Errc::version_mismatch));
    EXPECT_NE(std::string(e.what()).find("6.0"), std::string::npos) << e.what();
  }
}

TEST(Target, ForDeviceWithoutADriverSaysSo) {
  if (kiln::driver::driver_state().api) GTEST_SKIP() << "a driver is loaded here; the GPU tests cover for_device";
  try {
    Target::for_device(0);
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(Errc::driver_not_found)) << e.what();
  }
}

TEST(Target, NonPositiveArchitectureIsRefused) {
  EXPECT_THROW(Target::for_arch(0), kiln::Error);
  EXPECT_THROW(Target::for_arch(-90, ImageKind::ptx), kiln::Error);
}

}  // namespace
