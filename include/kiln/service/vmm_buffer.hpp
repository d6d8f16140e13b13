// Device memory made with the virtual memory management API (cuMemCreate) and exportable as a
// POSIX file descriptor, so another process (a worker) can map the same physical memory. The
// physical memory lives while any process holds it: when a worker dies, the supervisor's reference
// keeps the data, and a new worker maps it again.
//
// Thread safety: a VmmAllocation is owned by one object; its address may be used from any thread.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <utility>

namespace kiln::service {

class VmmAllocation {
 public:
  VmmAllocation() = default;
  // Creates `bytes` (rounded up to the allocation granularity) on `device` and maps it into the
  // current process, read-write for that device. Throws memory::OutOfMemoryError when it cannot.
  static VmmAllocation create(int device, std::size_t bytes);
  // Maps memory another process exported (takes ownership of `fd` and closes it).
  static VmmAllocation import(int device, int fd, std::size_t size);
  ~VmmAllocation();
  VmmAllocation(VmmAllocation&& o) noexcept
      : handle_(std::exchange(o.handle_, 0)), address_(std::exchange(o.address_, 0)), size_(std::exchange(o.size_, 0)),
        device_(o.device_) {}
  VmmAllocation& operator=(VmmAllocation&& o) noexcept;
  VmmAllocation(const VmmAllocation&) = delete;
  VmmAllocation& operator=(const VmmAllocation&) = delete;

  CUdeviceptr address() const noexcept { return address_; }
  std::size_t size() const noexcept { return size_; }  // the mapped (rounded) size
  int device() const noexcept { return device_; }
  // A new descriptor for the memory, for SCM_RIGHTS; the caller closes it.
  int export_fd() const;

 private:
  static void map(VmmAllocation& a);
  CUmemGenericAllocationHandle handle_ = 0;
  CUdeviceptr address_ = 0;
  std::size_t size_ = 0;
  int device_ = 0;
};

}  // namespace kiln::service
