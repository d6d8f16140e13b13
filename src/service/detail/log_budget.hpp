// A budget for one kind of log line that a client can provoke at will (a refused token): at most
// `per_second` lines a second; the lines past it are counted, and the next line allowed says how
// many were left out (`suppressed`), so a flood of bad requests costs a few lines, not one each,
// and nothing is lost from the count.
//
// Thread safety: any thread may call take() at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>

namespace kiln::service::detail {

class LogBudget {
 public:
  using Clock = std::chrono::steady_clock;
  explicit LogBudget(unsigned per_second) : per_second_(per_second) {}

  // Empty: leave this line out (it is counted). Otherwise write it, with the count of the lines
  // left out since the last one written (0 when none were).
  std::optional<std::uint64_t> take(Clock::time_point now = Clock::now()) {
    std::lock_guard lock(mutex_);
    if (now - window_ >= std::chrono::seconds(1)) {
      window_ = now;
      used_ = 0;
    }
    if (used_ >= per_second_) {
      ++suppressed_;
      return std::nullopt;
    }
    ++used_;
    const std::uint64_t left_out = suppressed_;
    suppressed_ = 0;
    return left_out;
  }

 private:
  const unsigned per_second_;
  std::mutex mutex_;
  Clock::time_point window_{};
  unsigned used_ = 0;
  std::uint64_t suppressed_ = 0;
};

}  // namespace kiln::service::detail
