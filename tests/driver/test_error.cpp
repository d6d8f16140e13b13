#include <gtest/gtest.h>

#include <algorithm>

#include "kiln/driver/check.hpp"
#include "kiln/driver/error.hpp"

namespace {

TEST(Error, DriverErrorCarriesEveryField) {
  int line = 0;
  try {
    line = __LINE__ + 1;
    kiln::driver::check(CUDA_ERROR_ILLEGAL_ADDRESS, "cuStreamSynchronize");
    FAIL() << "check() did not throw";
  } catch (const kiln::Error& e) {
    EXPECT_EQ(e.domain(), kiln::Domain::driver);
    EXPECT_EQ(e.code(), 700);
    EXPECT_EQ(e.name(), "CUDA_ERROR_ILLEGAL_ADDRESS");
    EXPECT_FALSE(e.description().empty());
    EXPECT_FALSE(e.hint().empty());
    EXPECT_TRUE(e.sticky());
    EXPECT_EQ(e.call(), "cuStreamSynchronize");
    EXPECT_EQ(e.where().line(), static_cast<unsigned>(line));
    EXPECT_NE(std::string(e.where().file_name()).find("test_error.cpp"), std::string::npos);
    const std::string what = e.what();
    EXPECT_NE(what.find("cuStreamSynchronize failed: CUDA_ERROR_ILLEGAL_ADDRESS (700)"), std::string::npos)
        << what;
    EXPECT_NE(what.find("Hint: "), std::string::npos);
    EXPECT_NE(what.find("sticky"), std::string::npos);
    EXPECT_NE(what.find("test_error.cpp:" + std::to_string(line)), std::string::npos) << what;
  }
}

TEST(Error, NonStickyDriverError) {
  try {
    kiln::driver::check(CUDA_ERROR_OUT_OF_MEMORY, "cuMemAlloc");
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_FALSE(e.sticky());
    EXPECT_EQ(std::string(e.what()).find("sticky"), std::string::npos);
    EXPECT_TRUE(e.is(kiln::Domain::driver, CUDA_ERROR_OUT_OF_MEMORY));
  }
}

TEST(Error, SuccessDoesNotThrow) {
  EXPECT_NO_THROW(kiln::driver::check(CUDA_SUCCESS, "cuInit"));
  EXPECT_NO_THROW(kiln::driver::check(NVRTC_SUCCESS, "nvrtcCompileProgram"));
}

TEST(Error, NvrtcErrorIsItsOwnDomain) {
  try {
    kiln::driver::check(NVRTC_ERROR_COMPILATION, "nvrtcCompileProgram");
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_EQ(e.domain(), kiln::Domain::nvrtc);
    EXPECT_EQ(e.name(), "NVRTC_ERROR_COMPILATION");
  }
}

TEST(Error, KilnCodeWithDetail) {
  kiln::Error e(kiln::Errc::nvrtc_not_found, "KILN_NVRTC_PATH=/nowhere does not name a loadable NVRTC");
  EXPECT_TRUE(e.is(kiln::Errc::nvrtc_not_found));
  EXPECT_EQ(e.name(), "KILN_ERROR_NVRTC_NOT_FOUND");
  EXPECT_NE(std::string(e.what()).find("/nowhere"), std::string::npos);
}

TEST(Error, UnknownCodeStillReports) {
  kiln::Error e(kiln::Domain::driver, 123456, "cuFuture");
  EXPECT_EQ(e.name(), "UNKNOWN");
  EXPECT_NE(std::string(e.what()).find("123456"), std::string::npos);
  EXPECT_FALSE(e.sticky());
}

TEST(Lookup, ByNameNumberAndDomain) {
  auto by_name = kiln::lookup_errors("CUDA_ERROR_ILLEGAL_ADDRESS");
  ASSERT_EQ(by_name.size(), 1u);
  EXPECT_EQ(by_name[0]->code, 700);

  auto lower = kiln::lookup_errors("cuda_error_illegal_address");
  ASSERT_EQ(lower.size(), 1u);
  EXPECT_EQ(lower[0], by_name[0]);

  auto by_number = kiln::lookup_errors("700");
  ASSERT_EQ(by_number.size(), 1u);
  EXPECT_EQ(by_number[0]->name, "CUDA_ERROR_ILLEGAL_ADDRESS");

  // 6 is a code in several domains; a prefix picks one.
  auto six = kiln::lookup_errors("6");
  EXPECT_GE(six.size(), 2u);
  auto nvrtc6 = kiln::lookup_errors("nvrtc:6");
  ASSERT_EQ(nvrtc6.size(), 1u);
  EXPECT_EQ(nvrtc6[0]->domain, kiln::Domain::nvrtc);

  EXPECT_TRUE(kiln::lookup_errors("CUDA_ERROR_NO_SUCH_THING").empty());
  EXPECT_TRUE(kiln::lookup_errors("12x").empty());
  EXPECT_TRUE(kiln::lookup_errors("bogus:1").empty());
  EXPECT_TRUE(kiln::lookup_errors("").empty());
}

}  // namespace
