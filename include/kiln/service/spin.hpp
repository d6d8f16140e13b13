// How long kilnd's threads poll before sleeping where the next event is microseconds away: a
// handler thread waiting for the GPU worker's reply, the worker waiting for its next launch, the
// handler pool waiting for a kept-alive client's next request. Waking a sleeping thread costs a
// cross-core interrupt (~10-20 µs in a VM), more than an empty launch; polling costs a core while
// it lasts, so it is on by default only where cores are plentiful.
#pragma once

#include <chrono>
#include <thread>

namespace kiln::service {

// 100 µs with 8 or more hardware threads, else 0 (sleep at once).
inline std::chrono::microseconds default_spin() noexcept {
  return std::chrono::microseconds(std::thread::hardware_concurrency() >= 8 ? 100 : 0);
}

}  // namespace kiln::service
