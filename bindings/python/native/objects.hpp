// The native objects more than one part of kiln._native reads: streams (launches, copies and
// buffers take them) and the memory owners (launch arguments may be any of them).
#pragma once

#include <string>

#include "native.hpp"

namespace kiln_python {

struct Stream {
  kiln_stream* handle = nullptr;
  bool owned = false;  // the per-device default streams are kiln's, never freed
  py::object borrowed_from;  // the other library's stream object, kept alive with this one
  Stream() = default;
  Stream(int device, int priority);
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream();
  int device() const;
};

// None: the device's default stream.
kiln_stream* stream_or_default(const py::handle& stream, int device);

// Device memory a kernel argument can name: pool buffers and managed memory.
struct DeviceMemory {
  uint64_t address = 0;
  std::size_t nbytes = 0;
  int device = 0;
  py::tuple shape;      // for __cuda_array_interface__
  std::string typestr;  // "<f4", "|u1", ...
  // The CUstream its memory is ordered on (allocation, memset, copies that name no stream), which a
  // consumer of __cuda_array_interface__ waits for; 0: none to wait for.
  uint64_t stream_handle = 0;
  virtual ~DeviceMemory() = default;
};

}  // namespace kiln_python
