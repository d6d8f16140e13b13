#include "kiln/core/wait.hpp"

#include <algorithm>
#include <thread>

#include "kiln/driver/check.hpp"

namespace kiln::core::detail {

WaitResult poll_until(const std::function<CUresult()>& query, const char* call,
                      Clock::time_point deadline, const std::stop_token& stop, const std::string& what) {
  using namespace std::chrono;
  // Yield for the first 50 µs (work that ends soon is seen within a microsecond or two), then sleep
  // a sixteenth of the time waited so far (20 µs to 1 ms): the completion is seen at most ~6% late,
  // and a wait of seconds costs a thousand wake-ups a second, not a core.
  const auto start = Clock::now();
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
    if (now - start < microseconds(50)) {
      std::this_thread::yield();
      continue;
    }
    const auto sleep = std::clamp<Clock::duration>((now - start) / 16, microseconds(20), milliseconds(1));
    const auto until = now + sleep;
    std::this_thread::sleep_until(until < deadline ? until : deadline);
  }
}

}  // namespace kiln::core::detail
