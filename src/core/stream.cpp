#include "kiln/core/stream.hpp"

#include <cstdio>
#include <exception>

#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::core {

using driver::check;
using driver::cuda;

namespace {

void require(const StreamRef& s, const char* what) {
  if (!s.handle()) throw Error(Errc::invalid_handle, std::string(what) + " on an empty or moved-from Stream");
}

void CUDA_CB run_callback(void* data) {
  std::unique_ptr<std::function<void()>> fn(static_cast<std::function<void()>*>(data));
  (*fn)();
}

}  // namespace

void StreamRef::synchronize() const {
  require(*this, "synchronize()");
  check(cuda().cuStreamSynchronize(handle_), "cuStreamSynchronize");
}

bool StreamRef::query() const {
  require(*this, "query()");
  CUresult r = cuda().cuStreamQuery(handle_);
  if (r == CUDA_ERROR_NOT_READY) return false;
  check(r, "cuStreamQuery");
  return true;
}

void StreamRef::wait(const EventRef& event) const {
  require(*this, "wait()");
  if (!event) throw Error(Errc::invalid_handle, "Stream::wait() on an empty or moved-from Event");
  check(cuda().cuStreamWaitEvent(handle_, event.handle(), 0), "cuStreamWaitEvent");
}

void StreamRef::add_callback(std::function<void()> fn) const {
  require(*this, "add_callback()");
  auto owned = std::make_unique<std::function<void()>>(std::move(fn));
  check(cuda().cuLaunchHostFunc(handle_, &run_callback, owned.get()), "cuLaunchHostFunc");
  owned.release();  // the callback owns it now
}

Completion StreamRef::completion() const {
  require(*this, "completion()");
  Event event = Event::create(context_);
  event.record(*this);
  return Completion(std::move(event), describe());
}

WaitResult StreamRef::wait_until(Clock::time_point deadline, std::stop_token stop) const {
  require(*this, "wait_until()");
  const auto& cu = cuda();
  CUstream s = handle_;
  return detail::poll_until([&cu, s] { return cu.cuStreamQuery(s); }, "cuStreamQuery", deadline, stop,
                            "work on " + describe());
}

StreamRef StreamRef::borrow(CUstream handle, ContextRef context) {
  if (!context) throw Error(Errc::invalid_argument, "StreamRef::borrow: no context");
  // 0, CU_STREAM_LEGACY (1) and CU_STREAM_PER_THREAD (2) name the current context's default streams.
  if (reinterpret_cast<std::uintptr_t>(handle) > 2) {
    context.make_current();
    CUcontext owner = nullptr;
    CUgreenCtx green = nullptr;  // the v2 form writes it: it may not be NULL
    check(cuda().cuStreamGetCtx(handle, &owner, &green), "cuStreamGetCtx");
    if (owner != context.handle()) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "stream %p belongs to context %p, not to context %p of device %d", static_cast<void*>(handle),
                    static_cast<void*>(owner), static_cast<void*>(context.handle()), context.device());
      throw Error(Errc::invalid_argument, std::string(buf) +
                                              ": name the device whose primary context made it (CuPy and PyTorch "
                                              "use the primary context)");
    }
  }
  // 0 is the legacy default stream, as the driver reads it; kiln's empty StreamRef is null.
  return StreamRef(handle != nullptr ? handle : CU_STREAM_LEGACY, context);
}

int StreamRef::priority() const {
  require(*this, "priority()");
  int p = 0;
  check(cuda().cuStreamGetPriority(handle_, &p), "cuStreamGetPriority");
  return p;
}

std::string StreamRef::describe() const {
  char buf[128];
  std::snprintf(buf, sizeof buf, "stream %p of context %p on device %d", static_cast<void*>(handle_),
                static_cast<void*>(context_.handle()), static_cast<int>(context_.device()));
  return buf;
}

Stream Stream::create(ContextRef context, StreamOptions options) {
  context.make_current();
  CUstream s = nullptr;
  const unsigned flags = options.non_blocking ? CU_STREAM_NON_BLOCKING : CU_STREAM_DEFAULT;
  check(cuda().cuStreamCreateWithPriority(&s, flags, options.priority), "cuStreamCreateWithPriority");
  return Stream(StreamRef(s, context));
}

Stream::~Stream() {
  if (handle()) driver::driver_state().api->cuStreamDestroy(handle());
}

Stream& Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    Stream dying(std::move(*this));
    ref_ = std::exchange(other.ref_, {});
  }
  return *this;
}

Completion Stream::completion() const { return ref_.completion(); }

std::pair<int, int> Stream::priority_range(ContextRef context) {
  context.make_current();
  int least = 0, greatest = 0;
  check(cuda().cuCtxGetStreamPriorityRange(&least, &greatest), "cuCtxGetStreamPriorityRange");
  return {least, greatest};
}

Completion::Completion(Event event, std::string what)
    : state_(std::make_shared<const State>(State{std::move(event), std::move(what)})) {}

bool Completion::done() const { return state_->event.query(); }

WaitResult Completion::wait_until(Clock::time_point deadline, std::stop_token stop) const {
  const auto& cu = cuda();
  CUevent e = state_->event.handle();
  return detail::poll_until([&cu, e] { return cu.cuEventQuery(e); }, "cuEventQuery", deadline, stop,
                            "work on " + state_->what);
}

}  // namespace kiln::core
