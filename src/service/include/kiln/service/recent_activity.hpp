// What kilnd did lately, for its status page (GET /v1/status): the launches that ended in the last
// minute (launches per second, latency percentiles) and the last failures (failed launches, refused
// launches and registrations, GPU worker events), each with kiln's explanation and hint. Both are
// bounded: at most kMaxSamples launch latencies within kWindow, and kMaxFailures failures.
//
// The Prometheus histogram (Metrics) stays the long-term record; this window answers "now".
//
// Thread safety: every member may be called from any thread at once (one mutex, held for a copy).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace kiln::service {

// One failure as the status page shows it.
struct RecentFailure {
  std::chrono::system_clock::time_point time{};
  std::string source;      // "launch" (a job failed), "refusal" (a request refused), "registration", "worker"
  std::string tenant;      // whose request it was; empty for a GPU worker's event (the whole machine's)
  std::string request_id;  // the request that caused it, when one did
  std::optional<int> device;
  std::uint64_t job = 0;   // the launch job, when one (0: none)
  std::string error;       // the code's symbolic name (CUDA_ERROR_ILLEGAL_ADDRESS, KILN_ERROR_DRIVER_NOT_FOUND)
  std::string message;     // what happened, as the answer or the event said it (at most kMaxMessageBytes)
  std::string explanation; // kiln's description of `error` (driver/error_table), when kiln knows it
  std::string hint;        // what to do about it: the table's hint, or the service's own
};

struct LaunchWindow {
  double window_s = 0;            // seconds the figures cover (less than a minute just after start)
  std::uint64_t launches = 0;     // launch jobs that ended within the window (any outcome)
  double launches_per_second = 0; // over the last kRateWindow (or since start)
  std::size_t samples = 0;        // latencies the percentiles are computed from (at most kMaxSamples)
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, max_ms = 0;  // acceptance to end, of the samples
};

class RecentActivity {
 public:
  static constexpr std::chrono::seconds kWindow{60};
  static constexpr std::chrono::seconds kRateWindow{10};
  static constexpr std::size_t kMaxSamples = 4096;
  static constexpr std::size_t kMaxFailures = 32;
  static constexpr std::size_t kMaxMessageBytes = 2048;

  using Clock = std::chrono::steady_clock;

  RecentActivity() : started_(Clock::now()) {}

  // A launch job ended, `seconds` after it was accepted.
  void launch_ended(double seconds, Clock::time_point now = Clock::now()) noexcept;
  // Fills explanation and hint from kiln's error table when they are empty and `error` is a code
  // the table knows; cuts the message to kMaxMessageBytes (on a UTF-8 boundary).
  void failure(RecentFailure failure) noexcept;

  LaunchWindow launches(Clock::time_point now = Clock::now()) const;
  // Newest first.
  std::vector<RecentFailure> failures() const;

 private:
  struct Second {
    std::int64_t second = -1;  // seconds since started_
    std::uint64_t count = 0;
  };
  mutable std::mutex mutex_;
  Clock::time_point started_;
  std::deque<std::pair<Clock::time_point, float>> samples_;       // (end, latency ms), oldest first
  std::array<Second, kWindow.count()> per_second_{};             // launches ended per second, a ring
  std::deque<RecentFailure> failures_;                            // oldest first
};

}  // namespace kiln::service
