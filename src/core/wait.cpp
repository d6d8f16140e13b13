#include "kiln/core/wait.hpp"

#include <sys/prctl.h>

#include <algorithm>
#include <optional>
#include <thread>

#include "kiln/driver/check.hpp"
#include "kiln/driver/cpu_relax.hpp"

namespace kiln::core::detail {

namespace {

// Linux lets a sleeping thread wake up to its timer slack (50 µs by default) late: a wait that
// sleeps in steps of tens of microseconds needs a finer slack, and gives the thread's own back.
class FineTimerSlack {
 public:
  FineTimerSlack() : saved_(::prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0)) {
    if (saved_ > 0) ::prctl(PR_SET_TIMERSLACK, 1000ul, 0, 0, 0);  // 1 µs
  }
  ~FineTimerSlack() {
    if (saved_ > 0) ::prctl(PR_SET_TIMERSLACK, static_cast<unsigned long>(saved_), 0, 0, 0);
  }
  FineTimerSlack(const FineTimerSlack&) = delete;
  FineTimerSlack& operator=(const FineTimerSlack&) = delete;

 private:
  long saved_;
};

}  // namespace

WaitResult poll_until(const std::function<CUresult()>& query, const char* call,
                      Clock::time_point deadline, const std::stop_token& stop, const std::string& what) {
  using namespace std::chrono;
  // Two phases, measured on the H200 (bench_core, "wait"): for the first kSpin the thread
  // spins on the query as the driver's own synchronize does, so short work is seen as soon as the
  // driver would see it; then it sleeps a 128th of the time waited so far (10 µs to 1 ms) with a
  // 1 µs timer slack, so the end is seen under 1% late, and a wait of seconds costs a thousand
  // wake-ups a second, not a core. Every round checks the deadline and the stop token.
  constexpr auto kSpin = microseconds(1000);
  const auto start = Clock::now();
  std::optional<FineTimerSlack> slack;
  for (;;) {
    CUresult r = query();
    if (r == CUDA_SUCCESS) return {WaitStatus::completed, {}};
    if (r != CUDA_ERROR_NOT_READY) driver::check(r, call);
    const auto now = Clock::now();
    if (stop.stop_requested())
      return {WaitStatus::cancelled,
              what + " is still running: the wait was cancelled, and nothing can stop a running kernel"};
    if (now >= deadline)
      return {WaitStatus::timed_out,
              what + " is still running after the deadline; nothing can stop a running kernel"};
    const auto waited = now - start;
    if (waited < kSpin) {
      for (int i = 0; i < 32; ++i) cpu_relax();
      continue;
    }
    if (!slack) slack.emplace();
    const auto sleep = std::clamp<Clock::duration>(waited / 128, microseconds(10), milliseconds(1));
    const auto until = now + sleep;
    std::this_thread::sleep_until(until < deadline ? until : deadline);
  }
}

}  // namespace kiln::core::detail
