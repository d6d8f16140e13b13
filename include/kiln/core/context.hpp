// Contexts and the current-context discipline.
//
// kiln never pushes and pops contexts around calls. Every object remembers the context it belongs
// to, and before a driver call that depends on the current context it makes that context current on
// the calling thread only if it is not already (one cuCtxGetCurrent, a thread-local read in the
// driver). No lock is taken. Any number of threads may use the same context at once.
//
// Thread safety: ContextRef is a value (copy freely, use from any thread). Context (an owned,
// non-primary context) may be used from any thread; destroying it while other threads use it is
// the caller's error, as with any owner. CurrentContextGuard belongs to the thread that made it.
#pragma once

#include <cuda.h>

#include <utility>

namespace kiln::core {

class ContextRef {
 public:
  ContextRef() = default;
  ContextRef(CUcontext handle, CUdevice device) noexcept : handle_(handle), device_(device) {}

  CUcontext handle() const noexcept { return handle_; }
  CUdevice device() const noexcept { return device_; }
  explicit operator bool() const noexcept { return handle_ != nullptr; }
  friend bool operator==(const ContextRef& a, const ContextRef& b) noexcept { return a.handle_ == b.handle_; }

  // Makes this context current on the calling thread if it is not already.
  void make_current() const;
  // Blocks until all work of this context is done (cuCtxSynchronize).
  void synchronize() const;

 private:
  CUcontext handle_ = nullptr;
  CUdevice device_ = 0;
};

// The context current on the calling thread (empty when none).
ContextRef current_context();

// Makes `context` current for the lifetime of the guard and restores the thread's previous context
// afterwards. Guards nest; each thread has its own.
class CurrentContextGuard {
 public:
  explicit CurrentContextGuard(ContextRef context);
  ~CurrentContextGuard();
  CurrentContextGuard(const CurrentContextGuard&) = delete;
  CurrentContextGuard& operator=(const CurrentContextGuard&) = delete;

 private:
  CUcontext previous_ = nullptr;
  bool changed_ = false;
};

// An owned, non-primary context (cuCtxCreate). Most code wants the device's primary context
// (Device::primary_context()), which the driver runtime and other libraries share; a separate
// context isolates state (and costs memory). Creating it does not leave it current.
class Context {
 public:
  Context() = default;
  static Context create(CUdevice device, unsigned flags = 0);
  ~Context();
  Context(Context&& other) noexcept : ref_(std::exchange(other.ref_, {})) {}
  Context& operator=(Context&& other) noexcept;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  ContextRef ref() const noexcept { return ref_; }
  operator ContextRef() const noexcept { return ref_; }
  CUcontext handle() const noexcept { return ref_.handle(); }

 private:
  explicit Context(ContextRef ref) : ref_(ref) {}
  ContextRef ref_;
};

namespace detail {
// The fast path every object uses before a context-dependent call.
void ensure_current(CUcontext context);
}  // namespace detail

}  // namespace kiln::core
