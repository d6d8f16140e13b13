// Waiting for GPU work with a deadline or a cancellation, without blocking forever and without
// spinning a core. Nothing can stop a kernel that is running: a wait that gives up says so, and
// names the work that is still in flight so the caller can account for it.
//
// Thread safety: WaitResult is a value. Completion may be waited on from several threads at once.
#pragma once

#include <cuda.h>

#include <chrono>
#include <functional>
#include <stop_token>
#include <string>

namespace kiln::core {

enum class WaitStatus { completed, timed_out, cancelled };

struct WaitResult {
  WaitStatus status = WaitStatus::completed;
  // Empty when completed; otherwise which work is still running ("stream 0x.. of context 0x..
  // on device 0"), and that it cannot be stopped from the host.
  std::string in_flight;

  bool completed() const noexcept { return status == WaitStatus::completed; }
  explicit operator bool() const noexcept { return completed(); }
};

using Clock = std::chrono::steady_clock;

namespace detail {
// Polls `query` (CUDA_SUCCESS when done, CUDA_ERROR_NOT_READY while running, anything else is thrown
// as kiln::Error naming `call`) until done, the deadline or a stop request. It spins for the first
// millisecond (as the driver's own synchronize does), then sleeps a 128th of the time waited so far
// (10 µs to 1 ms): the end is seen under 1% late, and a long wait costs almost no CPU.
// `what` describes the work for the in-flight message.
WaitResult poll_until(const std::function<CUresult()>& query, const char* call,
                      Clock::time_point deadline, const std::stop_token& stop, const std::string& what);
}  // namespace detail

}  // namespace kiln::core
