// CUDA events: owner (Event) and non-owning view (EventRef).
//
// Thread safety: an EventRef may be queried, synchronised and waited on from any number of threads.
// Recording the same event from two threads at once is a race in CUDA itself: don't.
#pragma once

#include <cuda.h>

#include <chrono>
#include <stop_token>
#include <utility>

#include "kiln/core/context.hpp"
#include "kiln/core/wait.hpp"

namespace kiln::core {

class StreamRef;

struct EventOptions {
  bool timing = false;         // needed for elapsed_ms(); timing events cost more to record
  bool blocking_sync = false;  // synchronize() sleeps in the driver instead of spinning
  bool interprocess = false;   // requires timing = false
};

class EventRef {
 public:
  EventRef() = default;
  EventRef(CUevent handle, ContextRef context) noexcept : handle_(handle), context_(context) {}

  CUevent handle() const noexcept { return handle_; }
  ContextRef context() const noexcept { return context_; }
  explicit operator bool() const noexcept { return handle_ != nullptr; }

  void record(const StreamRef& stream) const;
  bool query() const;  // true when the recorded work has finished
  void synchronize() const;
  WaitResult wait_until(Clock::time_point deadline, std::stop_token stop = {}) const;
  template <typename Rep, typename Period>
  WaitResult wait_for(std::chrono::duration<Rep, Period> timeout, std::stop_token stop = {}) const {
    return wait_until(Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout), std::move(stop));
  }

 private:
  CUevent handle_ = nullptr;
  ContextRef context_;
};

// Milliseconds between two recorded timing events.
float elapsed_ms(const EventRef& start, const EventRef& end);

class Event {
 public:
  Event() = default;
  static Event create(ContextRef context, EventOptions options = {});
  ~Event();
  Event(Event&& other) noexcept : ref_(std::exchange(other.ref_, {})) {}
  Event& operator=(Event&& other) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  EventRef ref() const noexcept { return ref_; }
  operator EventRef() const noexcept { return ref_; }
  CUevent handle() const noexcept { return ref_.handle(); }
  explicit operator bool() const noexcept { return static_cast<bool>(ref_); }

  void record(const StreamRef& stream) const { ref_.record(stream); }
  bool query() const { return ref_.query(); }
  void synchronize() const { ref_.synchronize(); }
  template <typename Rep, typename Period>
  WaitResult wait_for(std::chrono::duration<Rep, Period> timeout, std::stop_token stop = {}) const {
    return ref_.wait_for(timeout, std::move(stop));
  }
  WaitResult wait_until(Clock::time_point deadline, std::stop_token stop = {}) const {
    return ref_.wait_until(deadline, std::move(stop));
  }

 private:
  explicit Event(EventRef ref) : ref_(ref) {}
  EventRef ref_;
};

}  // namespace kiln::core
