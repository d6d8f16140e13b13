// Streams and events. Waits release the GIL; a timeout or a cancel comes back as kiln's error.
#include <cmath>
#include <mutex>
#include <vector>

#include "native.hpp"
#include "objects.hpp"

namespace kiln_python {
namespace {

int64_t timeout_ns(const py::object& seconds) {
  if (seconds.is_none()) return -1;
  const double s = seconds.cast<double>();
  if (!(s >= 0) || !std::isfinite(s)) raise_invalid("timeout must be a finite number of seconds >= 0, or None");
  return static_cast<int64_t>(s * 1e9);
}

}  // namespace

Stream::Stream(int device, int priority) : owned(true) {
  checked([&](kiln_error* e) { return kiln_stream_create(device, priority, &handle, e); });
}

Stream::~Stream() {
  if (owned) kiln_stream_destroy(handle);
}

int Stream::device() const { return kiln_stream_device(handle); }

kiln_stream* default_stream(int device) {
  // Leaked on purpose, like the driver's own default stream: work on it may run at exit.
  static std::mutex mutex;
  static std::vector<kiln_stream*> streams;
  std::lock_guard lock(mutex);
  if (device < 0) raise_invalid("device " + std::to_string(device) + " is not a device ordinal");
  if (static_cast<std::size_t>(device) >= streams.size()) streams.resize(device + 1, nullptr);
  if (streams[device] == nullptr)
    checked([&](kiln_error* e) { return kiln_stream_create(device, 0, &streams[device], e); });
  return streams[device];
}

kiln_stream* stream_or_default(const py::handle& stream, int device) {
  if (stream.is_none()) return default_stream(device);
  if (!py::isinstance<Stream>(stream))
    raise_invalid(std::string("stream must be a kiln.Stream or None, not ") + Py_TYPE(stream.ptr())->tp_name);
  return stream.cast<Stream&>().handle;
}

struct Event {
  kiln_event* handle = nullptr;
  int device = 0;  // record() with no stream uses this device's default stream
  Event(int device_ordinal, bool timing) : device(device_ordinal) {
    checked([&](kiln_error* e) { return kiln_event_create(device, timing ? KILN_EVENT_TIMING : 0u, &handle, e); });
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() { kiln_event_destroy(handle); }
};

void register_streams(py::module_& m) {
  py::class_<Stream>(m, "Stream")
      .def(py::init<int, int>(), py::arg("device") = 0, py::arg("priority") = 0)
      .def_property_readonly("device", &Stream::device)
      // The CUstream as an int, as CuPy's ExternalStream and torch.cuda.ExternalStream take it, and
      // the protocol's __cuda_stream__ (version 0).
      .def_property_readonly("handle", [](const Stream& s) { return kiln_stream_handle(s.handle); })
      .def("__cuda_stream__", [](const Stream& s) { return py::make_tuple(0, kiln_stream_handle(s.handle)); })
      .def("synchronize",
           [](Stream& s) { checked_nogil([&](kiln_error* e) { return kiln_stream_synchronize(s.handle, e); }); })
      .def(
          "wait",
          [](Stream& s, const py::object& timeout) {
            const int64_t ns = timeout_ns(timeout);
            checked_nogil([&](kiln_error* e) { return kiln_stream_wait(s.handle, ns, nullptr, e); });
          },
          py::arg("timeout") = py::none())
      .def("wait_event", [](Stream& s, const Event& event) {
        checked([&](kiln_error* e) { return kiln_stream_wait_event(s.handle, event.handle, e); });
      });
  m.def("borrow_stream", [](int device, uint64_t handle, py::object owner) {
    auto s = std::make_unique<Stream>();
    checked([&](kiln_error* e) { return kiln_stream_borrow(device, handle, &s->handle, e); });
    s->owned = true;  // kiln's handle is freed; the CUstream stays its owner's
    s->borrowed_from = std::move(owner);
    return s;
  });
  m.def("default_stream", [](int device) {
    auto s = std::make_unique<Stream>();
    s->handle = default_stream(device);
    s->owned = false;
    return s;
  });

  py::class_<Event>(m, "Event")
      .def(py::init<int, bool>(), py::arg("device") = 0, py::arg("timing") = false)
      .def(
          "record",
          [](Event& ev, const py::object& stream) {
            kiln_stream* s = stream_or_default(stream, ev.device);
            checked([&](kiln_error* e) { return kiln_event_record(ev.handle, s, e); });
          },
          py::arg("stream") = py::none())
      .def(
          "wait",
          [](Event& ev, const py::object& timeout) {
            const int64_t ns = timeout_ns(timeout);
            checked_nogil([&](kiln_error* e) { return kiln_event_wait(ev.handle, ns, nullptr, e); });
          },
          py::arg("timeout") = py::none())
      .def("elapsed_ms", [](const Event& start, const Event& end) {
        float ms = 0;
        checked([&](kiln_error* e) { return kiln_event_elapsed_ms(start.handle, end.handle, &ms, e); });
        return ms;
      });
}

}  // namespace kiln_python
