// Device memory another process can map: made with the virtual memory management API
// (cuMemCreate, POSIX file descriptor handles), mapped into this process read-write for its device,
// and exportable as a file descriptor (for SCM_RIGHTS). The physical memory lives while any process
// holds a handle to it: when the importing process dies, the exporter's reference keeps the data,
// and a new process imports it again. kilnd's supervisor allocates its buffers this way and its GPU
// workers import them.
//
// A move-only owner like the other memory kinds (core/memory.hpp): it releases exactly once, in the
// order the driver needs (unmap, free the address range, release the handle), and its destructor
// never throws. An allocation (not an import: that maps memory another process allocated and
// registered) is registered with the AllocationTracker under the caller's tag and call site.
//
// Thread safety: like unique_ptr: one thread moves or destroys an owner, any number may read
// through it; its address may be used from any thread and any context of its device.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <source_location>
#include <string_view>
#include <utility>

#include "kiln/core/context.hpp"

namespace kiln::core {

class ShareableBuffer {
 public:
  ShareableBuffer() = default;
  // `bytes` rounded up to the device's allocation granularity, on the device of `context` (made
  // current for the driver calls). Out of device memory is a kiln::Error with the driver's
  // CUDA_ERROR_OUT_OF_MEMORY from cuMemCreate; 0 bytes is Errc::invalid_argument.
  static ShareableBuffer allocate(ContextRef context, std::size_t bytes, std::string_view tag = {},
                                  std::source_location where = std::source_location::current());
  // Maps memory another process exported with export_fd(); `bytes` is its (rounded) size(). Takes
  // ownership of `fd` and closes it, whatever happens. A negative descriptor or 0 bytes is
  // Errc::invalid_argument, refused before any driver call.
  static ShareableBuffer import(ContextRef context, int fd, std::size_t bytes);
  ~ShareableBuffer();
  ShareableBuffer(ShareableBuffer&& other) noexcept
      : handle_(std::exchange(other.handle_, 0)), ptr_(std::exchange(other.ptr_, 0)),
        bytes_(std::exchange(other.bytes_, 0)), context_(std::exchange(other.context_, {})),
        tracked_(std::exchange(other.tracked_, false)) {}
  ShareableBuffer& operator=(ShareableBuffer&& other) noexcept;
  ShareableBuffer(const ShareableBuffer&) = delete;
  ShareableBuffer& operator=(const ShareableBuffer&) = delete;

  CUdeviceptr data() const noexcept { return ptr_; }
  std::size_t size() const noexcept { return bytes_; }  // the mapped (rounded) size
  ContextRef context() const noexcept { return context_; }
  explicit operator bool() const noexcept { return ptr_ != 0; }
  CUdeviceptr kernel_argument() const noexcept { return ptr_; }

  // A new descriptor for the memory (cuMemExportToShareableHandle); the caller closes it. An empty
  // owner is Errc::invalid_handle.
  int export_fd() const;

 private:
  CUmemGenericAllocationHandle handle_ = 0;
  CUdeviceptr ptr_ = 0;
  std::size_t bytes_ = 0;
  ContextRef context_;
  bool tracked_ = false;
};

}  // namespace kiln::core
