#include "kiln/core/event.hpp"

#include "kiln/core/stream.hpp"
#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::core {

using driver::check;
using driver::cuda;

namespace {
void require(const EventRef& e, const char* what) {
  if (!e) throw Error(Errc::invalid_handle, std::string(what) + " on an empty or moved-from Event");
}
}  // namespace

void EventRef::record(const StreamRef& stream) const {
  require(*this, "record()");
  check(cuda().cuEventRecord(handle_, stream.handle()), "cuEventRecord");
}

bool EventRef::query() const {
  require(*this, "query()");
  CUresult r = cuda().cuEventQuery(handle_);
  if (r == CUDA_ERROR_NOT_READY) return false;
  check(r, "cuEventQuery");
  return true;
}

void EventRef::synchronize() const {
  require(*this, "synchronize()");
  check(cuda().cuEventSynchronize(handle_), "cuEventSynchronize");
}

WaitResult EventRef::wait_until(Clock::time_point deadline, std::stop_token stop) const {
  require(*this, "wait_until()");
  const auto& cu = cuda();
  CUevent e = handle_;
  return detail::poll_until([&cu, e] { return cu.cuEventQuery(e); }, "cuEventQuery", deadline, stop,
                            "work recorded on an event of context " +
                                std::to_string(reinterpret_cast<std::uintptr_t>(context_.handle())));
}

float elapsed_ms(const EventRef& start, const EventRef& end) {
  require(start, "elapsed_ms()");
  require(end, "elapsed_ms()");
  float ms = 0;
  check(cuda().cuEventElapsedTime(&ms, start.handle(), end.handle()), "cuEventElapsedTime");
  return ms;
}

Event Event::create(ContextRef context, EventOptions options) {
  unsigned flags = 0;
  if (!options.timing) flags |= CU_EVENT_DISABLE_TIMING;
  if (options.blocking_sync) flags |= CU_EVENT_BLOCKING_SYNC;
  if (options.interprocess) flags |= CU_EVENT_INTERPROCESS;
  context.make_current();
  CUevent e = nullptr;
  check(cuda().cuEventCreate(&e, flags), "cuEventCreate");
  return Event(EventRef(e, context));
}

Event::~Event() {
  if (ref_) driver::driver_state().api->cuEventDestroy(ref_.handle());
}

Event& Event::operator=(Event&& other) noexcept {
  if (this != &other) {
    Event dying(std::move(*this));
    ref_ = std::exchange(other.ref_, {});
  }
  return *this;
}

}  // namespace kiln::core
