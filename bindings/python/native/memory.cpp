// Device buffers from the stream-ordered pool, pinned blocks from the pinned pool (NumPy views
// them through the buffer protocol, without a copy), managed memory, and copies from any object
// with the buffer protocol. Copies release the GIL.
#include "native.hpp"
#include "objects.hpp"

namespace kiln_python {
namespace {

constexpr int kOutOfMemory = 2;  // CUDA_ERROR_OUT_OF_MEMORY

// A failed allocation: an out-of-memory error carries what was asked for and what the device had.
[[noreturn]] void raise_allocation(const kiln_error& error, std::size_t requested, int device) {
  py::dict extra;
  if (error.domain == KILN_ERROR_DRIVER && error.code == kOutOfMemory) {
    extra["requested"] = requested;
    ErrorBox ignored;
    uint64_t free = 0, total = 0;
    if (device >= 0 && kiln_device_memory(device, &free, &total, &ignored.error) == KILN_OK) {
      extra["free"] = free;
      extra["total"] = total;
    }
  }
  raise(error, extra);
}

struct DeviceBuffer : DeviceMemory {
  kiln_buffer* handle = nullptr;
  // The stream it is freed in order on, released only after the buffer: a borrowed stream's owner
  // (CuPy's, PyTorch's) must not destroy the CUstream first. A member, not a Python attribute, as
  // a Python subclass's __dict__ is cleared before the native part is destroyed.
  py::object stream_owner;
  DeviceBuffer(std::size_t bytes, const py::object& stream, int device_ordinal, const std::string& tag,
               py::tuple shape_, std::string typestr_)
      : stream_owner(stream) {
    kiln_stream* s = stream_or_default(stream, device_ordinal);
    ErrorBox box;
    if (kiln_buffer_create(s, bytes, tag.c_str(), &handle, &address, &box.error) != KILN_OK)
      raise_allocation(box.error, bytes, kiln_stream_device(s));
    nbytes = bytes;
    device = kiln_buffer_device(handle);
    stream_handle = kiln_stream_handle(s);
    shape = std::move(shape_);
    typestr = std::move(typestr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() override { close(); }
  void close() {
    kiln_buffer_destroy(handle);
    handle = nullptr;
    address = 0;
  }
};

struct ManagedBuffer : DeviceMemory {
  kiln_managed* handle = nullptr;
  ManagedBuffer(std::size_t bytes, int device_ordinal, const std::string& tag, py::tuple shape_, std::string typestr_) {
    ErrorBox box;
    if (kiln_managed_create(device_ordinal, bytes, tag.c_str(), &handle, &address, &box.error) != KILN_OK)
      raise_allocation(box.error, bytes, device_ordinal);
    nbytes = bytes;
    device = device_ordinal;
    shape = std::move(shape_);
    typestr = std::move(typestr_);
  }
  ManagedBuffer(const ManagedBuffer&) = delete;
  ManagedBuffer& operator=(const ManagedBuffer&) = delete;
  ~ManagedBuffer() override { kiln_managed_destroy(handle); }
};

struct PinnedPool {
  kiln_pinned_pool* handle = nullptr;
  PinnedPool(int device, bool plain, uint64_t max_cached_bytes) {
    checked([&](kiln_error* e) {
      return kiln_pinned_pool_create(device, plain ? KILN_HOST_PLAIN : KILN_HOST_PINNED, max_cached_bytes,
                                     &handle, e);
    });
  }
  PinnedPool(const PinnedPool&) = delete;
  PinnedPool& operator=(const PinnedPool&) = delete;
  ~PinnedPool() { kiln_pinned_pool_destroy(handle); }
};

// A block stays valid after its pool is gone, so it needs no reference to the pool.
struct PinnedBlock {
  kiln_pinned* handle = nullptr;
  void* data = nullptr;
  std::size_t nbytes = 0;
  PinnedBlock(PinnedPool& pool, std::size_t bytes, const std::string& tag) {
    ErrorBox box;
    if (kiln_pinned_create(pool.handle, bytes, tag.c_str(), &handle, &data, &box.error) != KILN_OK)
      raise_allocation(box.error, bytes, -1);
    nbytes = bytes;
  }
  PinnedBlock(const PinnedBlock&) = delete;
  PinnedBlock& operator=(const PinnedBlock&) = delete;
  ~PinnedBlock() { kiln_pinned_destroy(handle); }
};

// A contiguous view of a host object for one copy.
class HostView {
 public:
  HostView(const py::handle& object, bool writable) {
    const int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(object.ptr(), &view_, flags) != 0) {
      PyErr_Clear();
      raise_invalid(std::string("a copy needs a C-contiguous") + (writable ? " writable" : "") +
                    " host buffer (a NumPy array, bytes, bytearray, memoryview); got " +
                    std::string(py::str(py::type::handle_of(object).attr("__name__"))));
    }
  }
  HostView(const HostView&) = delete;
  HostView& operator=(const HostView&) = delete;
  ~HostView() { PyBuffer_Release(&view_); }
  void* data() const { return view_.buf; }
  std::size_t size() const { return static_cast<std::size_t>(view_.len); }

 private:
  Py_buffer view_{};
};

void check_fits(std::size_t bytes, std::size_t offset, const DeviceMemory& memory, const char* what) {
  if (memory.address == 0) raise_invalid(std::string(what) + ": the buffer was closed");
  if (offset > memory.nbytes || bytes > memory.nbytes - offset)
    raise_invalid(std::string(what) + ": " + std::to_string(bytes) + " bytes at offset " + std::to_string(offset) +
                  " do not fit in the buffer of " + std::to_string(memory.nbytes) + " bytes");
}

void copy_in(DeviceMemory& memory, const py::object& source, std::size_t offset, const py::object& stream,
             bool async) {
  HostView host(source, false);
  check_fits(host.size(), offset, memory, "copy_from_host");
  kiln_stream* s = stream_or_default(stream, memory.device);
  const uint64_t dst = memory.address + offset;
  checked_nogil([&](kiln_error* e) {
    if (async) return kiln_copy_to_device_async(s, dst, host.data(), host.size(), e);
    // Synchronous means on the device at return, for readers on any stream: the driver returns from
    // a small pageable copy once it has staged the bytes, before they reach the device.
    const kiln_status copied = kiln_copy_to_device(s, dst, host.data(), host.size(), e);
    return copied == KILN_OK ? kiln_stream_synchronize(s, e) : copied;
  });
}

void copy_out(DeviceMemory& memory, const py::object& destination, std::size_t offset, const py::object& stream,
              bool async) {
  HostView host(destination, true);
  check_fits(host.size(), offset, memory, "copy_to_host");
  kiln_stream* s = stream_or_default(stream, memory.device);
  const uint64_t src = memory.address + offset;
  checked_nogil([&](kiln_error* e) {
    return async ? kiln_copy_to_host_async(s, host.data(), src, host.size(), e)
                 : kiln_copy_to_host(s, host.data(), src, host.size(), e);
  });
}

py::dict array_interface(const DeviceMemory& m) {
  py::dict d;
  d["shape"] = m.shape;
  d["typestr"] = m.typestr;
  d["data"] = py::make_tuple(m.address, false);
  d["strides"] = py::none();
  d["version"] = 3;
  // The consumer (CuPy, PyTorch, Numba) orders its work after this stream's: the buffer's
  // allocation and whatever kiln did to it there may still be in flight. (The protocol's legacy
  // default stream is 1, which is CU_STREAM_LEGACY: what kiln holds for a borrowed stream 0.)
  if (m.address != 0 && m.stream_handle != 0) d["stream"] = py::int_(m.stream_handle);
  return d;
}

}  // namespace

void register_memory(py::module_& m) {
  py::class_<DeviceMemory>(m, "DeviceMemory")
      .def_property_readonly("address", [](const DeviceMemory& d) { return d.address; })
      .def_property_readonly("nbytes", [](const DeviceMemory& d) { return d.nbytes; })
      .def_property_readonly("device", [](const DeviceMemory& d) { return d.device; })
      .def_property_readonly("shape", [](const DeviceMemory& d) { return d.shape; })
      .def_property_readonly("typestr", [](const DeviceMemory& d) { return d.typestr; })
      .def_property_readonly("__cuda_array_interface__", &array_interface)
      .def("copy_from_host", &copy_in, py::arg("source"), py::arg("offset") = 0, py::arg("stream") = py::none(),
           py::arg("asynchronous") = false)
      .def("copy_to_host", &copy_out, py::arg("destination"), py::arg("offset") = 0,
           py::arg("stream") = py::none(), py::arg("asynchronous") = false)
      .def(
          "memset",
          [](DeviceMemory& d, unsigned char value, const py::object& stream) {
            check_fits(d.nbytes, 0, d, "memset");
            kiln_stream* s = stream_or_default(stream, d.device);
            checked([&](kiln_error* e) { return kiln_memset_async(s, d.address, value, d.nbytes, e); });
          },
          py::arg("value"), py::arg("stream") = py::none());

  py::class_<DeviceBuffer, DeviceMemory>(m, "DeviceBuffer")
      .def(py::init<std::size_t, const py::object&, int, const std::string&, py::tuple, std::string>(),
           py::arg("nbytes"), py::arg("stream"), py::arg("device"), py::arg("tag"), py::arg("shape"),
           py::arg("typestr"))
      .def("close", &DeviceBuffer::close)
      .def_property_readonly("closed", [](const DeviceBuffer& b) { return b.handle == nullptr; });

  // Managed memory is host-addressable too: the buffer protocol gives NumPy a view of it.
  py::class_<ManagedBuffer, DeviceMemory>(m, "ManagedBuffer", py::buffer_protocol())
      .def(py::init<std::size_t, int, const std::string&, py::tuple, std::string>(), py::arg("nbytes"),
           py::arg("device"), py::arg("tag"), py::arg("shape"), py::arg("typestr"))
      .def_buffer([](ManagedBuffer& b) {
        return py::buffer_info(reinterpret_cast<void*>(b.address), 1, "B", 1, {static_cast<py::ssize_t>(b.nbytes)},
                               {py::ssize_t{1}});
      })
      .def(
          "prefetch",
          [](ManagedBuffer& b, bool to_host, const py::object& stream) {
            kiln_stream* s = stream_or_default(stream, b.device);
            checked([&](kiln_error* e) { return kiln_managed_prefetch(b.handle, to_host ? 1 : 0, s, e); });
          },
          py::arg("to_host"), py::arg("stream") = py::none());

  py::class_<PinnedPool>(m, "PinnedPool")
      .def(py::init<int, bool, uint64_t>(), py::arg("device"), py::arg("plain"), py::arg("max_cached_bytes"))
      .def("stats", [](PinnedPool& p) {
        kiln_pinned_pool_stats s{};
        s.size = sizeof s;
        checked([&](kiln_error* e) { return kiln_pinned_pool_get_stats(p.handle, &s, e); });
        py::dict d;
        d["in_use"] = s.in_use;
        d["cached"] = s.cached;
        d["hits"] = s.hits;
        d["misses"] = s.misses;
        d["allocator_bytes"] = s.allocator_bytes;
        return d;
      });

  py::class_<PinnedBlock>(m, "PinnedBlock", py::buffer_protocol())
      .def(py::init<PinnedPool&, std::size_t, const std::string&>(), py::arg("pool"), py::arg("nbytes"),
           py::arg("tag"))
      .def_property_readonly("address", [](const PinnedBlock& b) { return reinterpret_cast<uintptr_t>(b.data); })
      .def_property_readonly("nbytes", [](const PinnedBlock& b) { return b.nbytes; })
      .def_buffer([](PinnedBlock& b) {
        return py::buffer_info(b.data, 1, "B", 1, {static_cast<py::ssize_t>(b.nbytes)}, {py::ssize_t{1}});
      });

  m.def("pool_stats", [](int device) {
    kiln_pool_stats s{};
    s.size = sizeof s;
    checked([&](kiln_error* e) { return kiln_device_pool_stats(device, &s, e); });
    py::dict d;
    d["in_use"] = s.in_use;
    d["peak"] = s.peak;
    d["reserved"] = s.reserved;
    d["allocations"] = s.allocations;
    d["deallocations"] = s.deallocations;
    return d;
  });
}

}  // namespace kiln_python
