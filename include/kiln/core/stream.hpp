// CUDA streams: owner (Stream) and non-owning view (StreamRef), and completion handles.
//
// Thread safety: any number of threads may enqueue work on the same stream; the driver orders it
// by arrival. Queries, synchronisation and waits are safe from any thread. Destroying a Stream
// while another thread still enqueues on it is the caller's error, as with any owner.
#pragma once

#include <cuda.h>

#include <chrono>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <utility>

#include "kiln/core/context.hpp"
#include "kiln/core/event.hpp"
#include "kiln/core/wait.hpp"

namespace kiln::core {

struct StreamOptions {
  bool non_blocking = true;  // does not synchronise with the legacy default stream
  int priority = 0;          // lower is higher priority; see priority_range()
};

class Completion;

class StreamRef {
 public:
  StreamRef() = default;
  StreamRef(CUstream handle, ContextRef context) noexcept : handle_(handle), context_(context) {}
  // A stream another library made (CuPy, PyTorch, cuda.core), for kiln's work to join its order:
  // checked to belong to `context` (cuStreamGetCtx; 0 and the driver's CU_STREAM_LEGACY and
  // CU_STREAM_PER_THREAD are taken as they are), never destroyed by kiln. Its owner keeps it alive.
  static StreamRef borrow(CUstream handle, ContextRef context);

  CUstream handle() const noexcept { return handle_; }
  ContextRef context() const noexcept { return context_; }

  void synchronize() const;
  bool query() const;  // true when all enqueued work has finished
  // Later work on this stream waits for `event` (which may belong to another context or device).
  void wait(const EventRef& event) const;
  // Runs `fn` on a driver thread once the work enqueued so far has finished. `fn` must not call
  // CUDA. An exception escaping `fn` ends the process, as any exception on a foreign thread would.
  void add_callback(std::function<void()> fn) const;
  // Records a completion point: a handle that can be waited on with a deadline or a stop_token.
  Completion completion() const;

  WaitResult wait_until(Clock::time_point deadline, std::stop_token stop = {}) const;
  template <typename Rep, typename Period>
  WaitResult wait_for(std::chrono::duration<Rep, Period> timeout, std::stop_token stop = {}) const {
    return wait_until(Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout), std::move(stop));
  }

  int priority() const;
  std::string describe() const;  // "stream 0x.. of context 0x.. on device N"

 private:
  CUstream handle_ = nullptr;
  ContextRef context_;
};

class Stream {
 public:
  Stream() = default;
  static Stream create(ContextRef context, StreamOptions options = {});
  ~Stream();  // waits for nothing: work already enqueued completes, then the driver frees it
  Stream(Stream&& other) noexcept : ref_(std::exchange(other.ref_, {})) {}
  Stream& operator=(Stream&& other) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  StreamRef ref() const noexcept { return ref_; }
  operator StreamRef() const noexcept { return ref_; }
  CUstream handle() const noexcept { return ref_.handle(); }
  ContextRef context() const noexcept { return ref_.context(); }
  explicit operator bool() const noexcept { return ref_.handle() != nullptr; }

  void synchronize() const { ref_.synchronize(); }
  bool query() const { return ref_.query(); }
  void wait(const EventRef& event) const { ref_.wait(event); }
  void add_callback(std::function<void()> fn) const { ref_.add_callback(std::move(fn)); }
  Completion completion() const;
  template <typename Rep, typename Period>
  WaitResult wait_for(std::chrono::duration<Rep, Period> timeout, std::stop_token stop = {}) const {
    return ref_.wait_for(timeout, std::move(stop));
  }

  // {least, greatest} priority of the context's device: pass a value in between to create().
  static std::pair<int, int> priority_range(ContextRef context);

 private:
  explicit Stream(StreamRef ref) : ref_(ref) {}
  StreamRef ref_;
};

// A point in a stream's work, waitable with a deadline and abandonable through a std::stop_token.
// Copies share the same point. Abandoning a wait does not stop the GPU: the result says what is
// still running.
class Completion {
 public:
  Completion(Event event, std::string what);
  bool done() const;
  WaitResult wait(std::stop_token stop = {}) const { return wait_until(Clock::time_point::max(), std::move(stop)); }
  WaitResult wait_until(Clock::time_point deadline, std::stop_token stop = {}) const;
  template <typename Rep, typename Period>
  WaitResult wait_for(std::chrono::duration<Rep, Period> timeout, std::stop_token stop = {}) const {
    return wait_until(Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout), std::move(stop));
  }
  const std::string& what() const noexcept { return state_->what; }

 private:
  struct State {
    Event event;
    std::string what;
  };
  std::shared_ptr<const State> state_;
};

}  // namespace kiln::core
