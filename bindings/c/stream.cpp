// Streams, events and waits with a deadline or a cancellation.
#include "c/detail/boundary.hpp"
#include "c/detail/handles.hpp"
#include "kiln/core/device.hpp"

using namespace kiln;

namespace {

// Turns a wait that did not complete into the error the C ABI reports.
void require_completed(const core::WaitResult& result, const char* call, std::int64_t timeout_ns) {
  if (result.completed()) return;
  if (result.status == core::WaitStatus::cancelled)
    throw Error(Errc::cancelled, std::string(call) + ": cancelled; " + result.in_flight);
  throw Error(Errc::timeout, std::string(call) + ": " + std::to_string(timeout_ns) + " ns passed; " + result.in_flight);
}

core::Clock::time_point deadline_after(std::int64_t timeout_ns) {
  if (timeout_ns < 0) return core::Clock::time_point::max();
  const auto now = core::Clock::now();
  // A timeout so long that it would overflow the clock is no deadline at all.
  if (timeout_ns >= (core::Clock::time_point::max() - now).count()) return core::Clock::time_point::max();
  return now + std::chrono::nanoseconds(timeout_ns);
}

std::stop_token token_of(const kiln_cancel* cancel) {
  return cancel != nullptr ? cancel->source.get_token() : std::stop_token{};
}

}  // namespace

extern "C" {

kiln_status kiln_stream_create(int device, int priority, kiln_stream** stream, kiln_error* error) {
  return c::guarded(error, "kiln_stream_create", [&] {
    c::need_pointer(stream, "kiln_stream_create", "stream");
    *stream = nullptr;
    core::StreamOptions options;
    options.priority = priority;
    auto owner = std::make_shared<core::Stream>(
        core::Stream::create(core::Device::get(device).primary_context(), options));
    const core::StreamRef ref = owner->ref();
    *stream = new kiln_stream{std::move(owner), ref, device};
  });
}

kiln_status kiln_stream_borrow(int device, uint64_t handle, kiln_stream** stream, kiln_error* error) {
  return c::guarded(error, "kiln_stream_borrow", [&] {
    c::need_pointer(stream, "kiln_stream_borrow", "stream");
    *stream = nullptr;
    const core::StreamRef ref = core::StreamRef::borrow(
        reinterpret_cast<CUstream>(static_cast<std::uintptr_t>(handle)), core::Device::get(device).primary_context());
    *stream = new kiln_stream{nullptr, ref, device};
  });
}

void kiln_stream_destroy(kiln_stream* stream) { delete stream; }

int kiln_stream_device(const kiln_stream* stream) { return stream != nullptr ? stream->device : -1; }

uint64_t kiln_stream_handle(const kiln_stream* stream) {
  return stream != nullptr ? reinterpret_cast<uint64_t>(stream->ref.handle()) : 0;
}

kiln_status kiln_stream_synchronize(kiln_stream* stream, kiln_error* error) {
  return c::guarded(error, "kiln_stream_synchronize", [&] {
    c::need(stream, "kiln_stream_synchronize", "stream").ref.synchronize();
  });
}

kiln_status kiln_stream_wait(kiln_stream* stream, int64_t timeout_ns, const kiln_cancel* cancel, kiln_error* error) {
  return c::guarded(error, "kiln_stream_wait", [&] {
    const kiln_stream& s = c::need(stream, "kiln_stream_wait", "stream");
    require_completed(s.ref.wait_until(deadline_after(timeout_ns), token_of(cancel)), "kiln_stream_wait",
                      timeout_ns);
  });
}

kiln_status kiln_stream_wait_event(kiln_stream* stream, const kiln_event* event, kiln_error* error) {
  return c::guarded(error, "kiln_stream_wait_event", [&] {
    const kiln_stream& s = c::need(stream, "kiln_stream_wait_event", "stream");
    s.ref.wait(c::need(event, "kiln_stream_wait_event", "event").event);
  });
}

kiln_status kiln_event_create(int device, unsigned flags, kiln_event** event, kiln_error* error) {
  return c::guarded(error, "kiln_event_create", [&] {
    c::need_pointer(event, "kiln_event_create", "event");
    *event = nullptr;
    if ((flags & ~KILN_EVENT_TIMING) != 0)
      throw Error(Errc::invalid_argument, "kiln_event_create: unknown flags " + std::to_string(flags) +
                                              " (only KILN_EVENT_TIMING is defined)");
    core::EventOptions options;
    options.timing = (flags & KILN_EVENT_TIMING) != 0;
    *event = new kiln_event{core::Event::create(core::Device::get(device).primary_context(), options), device};
  });
}

void kiln_event_destroy(kiln_event* event) { delete event; }

kiln_status kiln_event_record(kiln_event* event, kiln_stream* stream, kiln_error* error) {
  return c::guarded(error, "kiln_event_record", [&] {
    kiln_event& e = c::need(event, "kiln_event_record", "event");
    e.event.record(c::need(stream, "kiln_event_record", "stream").ref);
  });
}

kiln_status kiln_event_wait(const kiln_event* event, int64_t timeout_ns, const kiln_cancel* cancel,
                            kiln_error* error) {
  return c::guarded(error, "kiln_event_wait", [&] {
    const kiln_event& e = c::need(event, "kiln_event_wait", "event");
    require_completed(e.event.wait_until(deadline_after(timeout_ns), token_of(cancel)), "kiln_event_wait",
                      timeout_ns);
  });
}

kiln_status kiln_event_elapsed_ms(const kiln_event* start, const kiln_event* end, float* ms, kiln_error* error) {
  return c::guarded(error, "kiln_event_elapsed_ms", [&] {
    const kiln_event& a = c::need(start, "kiln_event_elapsed_ms", "start");
    const kiln_event& b = c::need(end, "kiln_event_elapsed_ms", "end");
    *c::need_pointer(ms, "kiln_event_elapsed_ms", "ms") = core::elapsed_ms(a.event, b.event);
  });
}

kiln_status kiln_cancel_create(kiln_cancel** cancel, kiln_error* error) {
  return c::guarded(error, "kiln_cancel_create", [&] {
    *c::need_pointer(cancel, "kiln_cancel_create", "cancel") = new kiln_cancel{};
  });
}

void kiln_cancel_request(kiln_cancel* cancel) {
  if (cancel != nullptr) cancel->source.request_stop();
}

void kiln_cancel_destroy(kiln_cancel* cancel) { delete cancel; }

}  // extern "C"
