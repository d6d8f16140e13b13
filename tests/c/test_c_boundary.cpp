// The C ABI's exception boundary: whatever a body throws becomes a status and a filled kiln_error,
// and an extensible struct from an older caller is read only as far as its size says.
#include <gtest/gtest.h>

#include <stdexcept>

#include "c/detail/boundary.hpp"

namespace {

struct Error : kiln_error {
  Error() : kiln_error{} {}
  ~Error() { kiln_error_clear(this); }
  std::string text() const { return message != nullptr ? message : ""; }
};

TEST(CBoundary, AKilnErrorKeepsItsDomainCodeAndStickiness) {
  Error e;
  const kiln_status s = kiln::c::guarded(&e, "kiln_test", [] {
    throw kiln::Error(kiln::Domain::driver, 700, "cuStreamSynchronize", "while testing");
  });
  EXPECT_EQ(s, KILN_ERROR_DRIVER);
  EXPECT_EQ(e.code, 700);
  EXPECT_EQ(e.sticky, 1);
  EXPECT_STREQ(e.name, "CUDA_ERROR_ILLEGAL_ADDRESS");
  EXPECT_STREQ(e.call, "cuStreamSynchronize");
  EXPECT_NE(e.text().find("while testing"), std::string::npos) << e.text();
  EXPECT_GT(std::string(e.hint).size(), 10u);
}

TEST(CBoundary, AnyOtherExceptionBecomesAnInternalErrorNamingIt) {
  Error e;
  EXPECT_EQ(kiln::c::guarded(&e, "kiln_test", [] { throw std::runtime_error("the unexpected"); }), KILN_ERROR_KILN);
  EXPECT_EQ(e.code, KILN_ERRC_INTERNAL);
  EXPECT_NE(e.text().find("kiln_test: unexpected exception: the unexpected"), std::string::npos) << e.text();
  EXPECT_STREQ(e.call, "kiln_test");

  Error unknown;
  EXPECT_EQ(kiln::c::guarded(&unknown, "kiln_test", [] { throw 42; }), KILN_ERROR_KILN);
  EXPECT_NE(unknown.text().find("unknown type"), std::string::npos) << unknown.text();

  Error memory;
  EXPECT_EQ(kiln::c::guarded(&memory, "kiln_test", [] { throw std::bad_alloc(); }), KILN_ERROR_KILN);
  EXPECT_NE(memory.text().find("out of host memory"), std::string::npos);

  // No error to fill: the status alone.
  EXPECT_EQ(kiln::c::guarded(nullptr, "kiln_test", [] { throw std::logic_error("x"); }), KILN_ERROR_KILN);
  EXPECT_EQ(kiln::c::guarded(nullptr, "kiln_test", [] {}), KILN_OK);
}

TEST(CBoundary, AFilledErrorIsReplacedNotLeaked) {
  Error e;
  kiln::c::guarded(&e, "first", [] { throw std::runtime_error("one"); });
  kiln::c::guarded(&e, "second", [] { throw std::runtime_error("two"); });
  EXPECT_STREQ(e.call, "second");  // LeakSanitizer checks the first error's strings were released
}

TEST(CBoundary, AnOlderCallersStructIsReadOnlyAsFarAsItsSize) {
  kiln_program p{};
  p.size = sizeof p;
  EXPECT_TRUE(KILN_C_HAS(p, extra_option_count));
  p.size = offsetof(kiln_program, minimal);  // a caller built before `minimal` existed
  EXPECT_TRUE(KILN_C_HAS(p, relocatable_device_code));
  EXPECT_FALSE(KILN_C_HAS(p, minimal));
  EXPECT_FALSE(KILN_C_HAS(p, extra_options));
}

}  // namespace
