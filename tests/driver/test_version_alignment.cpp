#include <gtest/gtest.h>

#include <filesystem>

#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/environment.hpp"
#include "support/files.hpp"

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

// A second toolkit's NVRTC (CUDA_HOME, KILN_NVRTC_PATH): what the report says, for any versions.
namespace {

const std::vector<int> kNvrtc118{35, 37, 50, 52, 53, 60, 61, 62, 70, 72, 75, 80, 86, 87, 89, 90};
const std::vector<int> kKnown{75, 80, 86, 89, 90, 100, 120};

TEST(SecondToolkit, AnOlderNvrtcNamesTheArchitecturesItCannotTarget) {
  auto p = kiln::driver::check_nvrtc_older_than_build(13000, 11080, kNvrtc118, kKnown);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->id, "nvrtc_older_than_build");
  EXPECT_NE(p->message.find("NVRTC 11.8 is older than the CUDA kiln was built with (13.0)"), std::string::npos)
      << p->message;
  EXPECT_NE(p->message.find("cannot target sm_100 sm_120,"), std::string::npos) << p->message;
  EXPECT_NE(p->message.find("cache key holds NVRTC's version"), std::string::npos) << p->message;
  EXPECT_FALSE(p->hint.empty());
  EXPECT_FALSE(kiln::driver::check_nvrtc_older_than_build(13000, 13010, kNvrtc118, kKnown)) << "same major";
  EXPECT_FALSE(kiln::driver::check_nvrtc_older_than_build(12080, 13000, kNvrtc118, kKnown)) << "newer NVRTC";
  EXPECT_FALSE(kiln::driver::check_nvrtc_older_than_build(13000, 0, kNvrtc118, kKnown)) << "no NVRTC";
}

TEST(SecondToolkit, HeadersOfAnotherMajorVersionAreNamed) {
  auto p = kiln::driver::check_toolkit_headers_match(13000, 11080, "/usr/local/cuda");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->id, "toolkit_headers_differ");
  EXPECT_NE(p->message.find("/usr/local/cuda are CUDA 13.0, NVRTC is 11.8"), std::string::npos) << p->message;
  EXPECT_FALSE(kiln::driver::check_toolkit_headers_match(13000, 13000, "/usr/local/cuda"));
  EXPECT_FALSE(kiln::driver::check_toolkit_headers_match(0, 11080, "/nowhere")) << "headers not found: nothing to compare";
}

TEST(SecondToolkit, AnArchitectureNvrtcLacksIsExplained) {
  auto newer = kiln::driver::arch_unsupported_by_nvrtc(100, 11080, kNvrtc118);
  ASSERT_TRUE(newer);
  EXPECT_NE(newer->find("NVRTC 11.8 cannot target sm_100 (it targets sm_35 to sm_90)"), std::string::npos) << *newer;
  EXPECT_NE(newer->find("compute_90"), std::string::npos) << "the PTX way out: " << *newer;
  auto dropped = kiln::driver::arch_unsupported_by_nvrtc(35, 13000, {75, 80, 90, 100, 120});
  ASSERT_TRUE(dropped);
  EXPECT_NE(dropped->find("no longer targets it"), std::string::npos) << *dropped;
  EXPECT_FALSE(kiln::driver::arch_unsupported_by_nvrtc(90, 11080, kNvrtc118));
  EXPECT_FALSE(kiln::driver::arch_unsupported_by_nvrtc(90, 11080, {})) << "unknown list: NVRTC decides";
}

TEST(SecondToolkit, TheToolkitVersionIsReadFromCudaH) {
  const auto dir = kiln::testing::fresh_test_folder("kiln-toolkit");
  std::filesystem::create_directories(dir / "include");
  kiln::testing::write_all(dir / "include" / "cuda.h", "#ifndef __cuda_cuda_h__\n#define __cuda_cuda_h__\n#define CUDA_VERSION 11080\n");
  EXPECT_EQ(kiln::driver::toolkit_cuda_version(dir.string()), 11080);
  EXPECT_EQ(kiln::driver::toolkit_cuda_version((dir / "none").string()), 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
