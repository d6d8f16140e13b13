// A real Redis for the shared-queue tests: the one named by $KILN_TEST_REDIS_URL (.ci/run starts
// one), else a private redis-server (Debian's package) on a Unix socket in a temporary folder,
// stopped with the object. Where neither exists the tests skip, saying so; with
// KILN_REQUIRE_REDIS=1 (set by .ci/run) they fail instead.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "support/child.hpp"
#include "support/http_fixture.hpp"

namespace kiln::testing {

class RedisServer {
 public:
  RedisServer();
  const std::string& url() const noexcept { return url_; }  // empty when none could be had
  const std::string& why_unavailable() const noexcept { return why_; }
  // A key prefix no other test (or test run sharing the server) uses.
  std::string unique_prefix() const;

 private:
  TempDir dir_;
  std::unique_ptr<Child> child_;
  std::string url_;
  std::string why_;
};

}  // namespace kiln::testing

// Skips (or, under KILN_REQUIRE_REDIS=1, fails) the test when `server` has no Redis.
#define KILN_REQUIRE_REDIS(server)                                                   \
  do {                                                                               \
    if ((server).url().empty()) {                                                    \
      if (std::getenv("KILN_REQUIRE_REDIS")) FAIL() << (server).why_unavailable();   \
      GTEST_SKIP() << (server).why_unavailable();                                    \
    }                                                                                \
  } while (0)
