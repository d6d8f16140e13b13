#include <gtest/gtest.h>

#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/environment.hpp"

namespace {

using kiln::driver::check_version_alignment;

TEST(VersionAlignment, NvrtcNewerThanDriverIsAProblem) {
  auto p = check_version_alignment(12040, 13000);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->id, "nvrtc_newer_than_driver");
  EXPECT_NE(p->message.find("NVRTC 13.0"), std::string::npos) << p->message;
  EXPECT_NE(p->message.find("CUDA 12.4"), std::string::npos) << p->message;
  EXPECT_NE(p->message.find("CUDA_ERROR_UNSUPPORTED_PTX_VERSION"), std::string::npos);
  EXPECT_NE(p->hint.find("CUBIN"), std::string::npos);
}

TEST(VersionAlignment, EqualOrOlderNvrtcIsFine) {
  EXPECT_FALSE(check_version_alignment(13000, 13000));
  EXPECT_FALSE(check_version_alignment(13000, 12080));
  EXPECT_FALSE(check_version_alignment(13010, 13000));
}

TEST(VersionAlignment, UnknownVersionsAreNotJudged) {
  EXPECT_FALSE(check_version_alignment(0, 13000));
  EXPECT_FALSE(check_version_alignment(13000, 0));
}

TEST(VersionAlignment, FormatsCudaVersions) {
  EXPECT_EQ(kiln::driver::format_cuda_version(13000), "13.0");
  EXPECT_EQ(kiln::driver::format_cuda_version(12080), "12.8");
  EXPECT_EQ(kiln::driver::format_cuda_version(11040), "11.4");
}

}  // namespace
