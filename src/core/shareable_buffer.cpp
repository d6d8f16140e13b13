#include "kiln/core/shareable_buffer.hpp"

#include <unistd.h>

#include <cstdint>
#include <new>
#include <string>

#include "kiln/core/allocation_tracker.hpp"
#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::core {

using driver::check;
using driver::cuda;

namespace {

int ordinal_of(ContextRef context) { return static_cast<int>(context.device()); }

CUmemAllocationProp properties(ContextRef context) {
  CUmemAllocationProp p{};
  p.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  p.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  p.location.id = ordinal_of(context);
  p.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
  return p;
}

// Reserves an address range for `bytes` of `handle`, maps it and makes it read-write for the
// device. On failure nothing stays reserved or mapped.
CUdeviceptr map(CUmemGenericAllocationHandle handle, std::size_t bytes, ContextRef context) {
  const auto& cu = cuda();
  CUdeviceptr ptr = 0;
  check(cu.cuMemAddressReserve(&ptr, bytes, 0, 0, 0), "cuMemAddressReserve");
  if (CUresult r = cu.cuMemMap(ptr, bytes, 0, handle, 0); r != CUDA_SUCCESS) {
    cu.cuMemAddressFree(ptr, bytes);
    check(r, "cuMemMap");
  }
  CUmemAccessDesc access{};
  access.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  access.location.id = ordinal_of(context);
  access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  if (CUresult r = cu.cuMemSetAccess(ptr, bytes, &access, 1); r != CUDA_SUCCESS) {
    cu.cuMemUnmap(ptr, bytes);
    cu.cuMemAddressFree(ptr, bytes);
    check(r, "cuMemSetAccess");
  }
  return ptr;
}

}  // namespace

ShareableBuffer ShareableBuffer::allocate(ContextRef context, std::size_t bytes, std::string_view tag,
                                          std::source_location where) {
  if (bytes == 0) throw Error(Errc::invalid_argument, "ShareableBuffer::allocate of 0 bytes");
  context.make_current();
  const auto& cu = cuda();
  const CUmemAllocationProp prop = properties(context);
  std::size_t granularity = 0;
  check(cu.cuMemGetAllocationGranularity(&granularity, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM),
        "cuMemGetAllocationGranularity");
  if (granularity == 0) granularity = 1;
  if (bytes > SIZE_MAX - (granularity - 1))
    throw Error(Errc::invalid_argument, "ShareableBuffer::allocate of " + std::to_string(bytes) +
                                            " bytes: no device can hold that many");
  ShareableBuffer b;
  b.bytes_ = (bytes + granularity - 1) / granularity * granularity;
  b.context_ = context;
  check(cu.cuMemCreate(&b.handle_, b.bytes_, &prop, 0), "cuMemCreate");
  b.ptr_ = map(b.handle_, b.bytes_, context);  // on failure b's destructor releases the handle
  AllocationTracker::instance().add(b.ptr_, b.bytes_, AllocationKind::device, ordinal_of(context), tag, where);
  b.tracked_ = true;
  return b;
}

ShareableBuffer ShareableBuffer::import(ContextRef context, int fd, std::size_t bytes) {
  if (fd < 0) throw Error(Errc::invalid_argument, "ShareableBuffer::import of descriptor " + std::to_string(fd));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (bytes == 0)
    throw Error(Errc::invalid_argument, "ShareableBuffer::import of 0 bytes (descriptor " + std::to_string(fd) + ")");
  context.make_current();
  ShareableBuffer b;
  b.bytes_ = bytes;
  b.context_ = context;
  check(cuda().cuMemImportFromShareableHandle(&b.handle_, reinterpret_cast<void*>(static_cast<std::intptr_t>(fd)),
                                              CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR),
        "cuMemImportFromShareableHandle");
  b.ptr_ = map(b.handle_, b.bytes_, context);
  return b;
}

int ShareableBuffer::export_fd() const {
  if (!handle_) throw Error(Errc::invalid_handle, "export_fd() on an empty ShareableBuffer");
  int fd = -1;
  check(cuda().cuMemExportToShareableHandle(&fd, handle_, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0),
        "cuMemExportToShareableHandle");
  return fd;
}

ShareableBuffer::~ShareableBuffer() {
  if (tracked_) AllocationTracker::instance().remove(ptr_);
  // Neither needs a current context: the mapping is the process's, the handle the driver's.
  const auto* api = driver::driver_state().api;
  if (!api) return;
  if (ptr_) {
    api->cuMemUnmap(ptr_, bytes_);
    api->cuMemAddressFree(ptr_, bytes_);
  }
  if (handle_) api->cuMemRelease(handle_);
}

ShareableBuffer& ShareableBuffer::operator=(ShareableBuffer&& other) noexcept {
  if (this != &other) {
    ShareableBuffer dying(std::move(*this));
    new (this) ShareableBuffer(std::move(other));
  }
  return *this;
}

}  // namespace kiln::core
