#include "kiln/service/vmm_buffer.hpp"

#include <unistd.h>

#include "kiln/core/device.hpp"
#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/memory/out_of_memory.hpp"

namespace kiln::service {

using driver::check;
using driver::cuda;

namespace {

CUmemAllocationProp properties(int device) {
  CUmemAllocationProp p{};
  p.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  p.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  p.location.id = device;
  p.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
  return p;
}

}  // namespace

void VmmAllocation::map(VmmAllocation& a) {
  const auto& cu = cuda();
  check(cu.cuMemAddressReserve(&a.address_, a.size_, 0, 0, 0), "cuMemAddressReserve");
  CUresult r = cu.cuMemMap(a.address_, a.size_, 0, a.handle_, 0);
  if (r != CUDA_SUCCESS) {
    cu.cuMemAddressFree(a.address_, a.size_);
    a.address_ = 0;
    check(r, "cuMemMap");
  }
  CUmemAccessDesc access{};
  access.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  access.location.id = a.device_;
  access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  check(cu.cuMemSetAccess(a.address_, a.size_, &access, 1), "cuMemSetAccess");
}

VmmAllocation VmmAllocation::create(int device, std::size_t bytes) {
  if (bytes == 0) throw Error(Errc::invalid_argument, "a buffer of 0 bytes");
  const auto& cu = cuda();
  core::Device dev = core::Device::get(device);
  dev.primary_context().make_current();
  CUmemAllocationProp prop = properties(device);
  std::size_t granularity = 0;
  check(cu.cuMemGetAllocationGranularity(&granularity, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM),
        "cuMemGetAllocationGranularity");
  VmmAllocation a;
  a.device_ = device;
  a.size_ = (bytes + granularity - 1) / granularity * granularity;
  CUresult r = cu.cuMemCreate(&a.handle_, a.size_, &prop, 0);
  if (r == CUDA_ERROR_OUT_OF_MEMORY) throw memory::OutOfMemoryError(memory::picture_of(dev, a.size_, 0), "cuMemCreate");
  check(r, "cuMemCreate");
  map(a);
  return a;
}

VmmAllocation VmmAllocation::import(int device, int fd, std::size_t size) {
  const auto& cu = cuda();
  VmmAllocation a;
  a.device_ = device;
  a.size_ = size;
  CUresult r = cu.cuMemImportFromShareableHandle(&a.handle_, reinterpret_cast<void*>(static_cast<std::intptr_t>(fd)),
                                                  CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
  ::close(fd);
  check(r, "cuMemImportFromShareableHandle");
  map(a);
  return a;
}

int VmmAllocation::export_fd() const {
  int fd = -1;
  check(cuda().cuMemExportToShareableHandle(&fd, handle_, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0),
        "cuMemExportToShareableHandle");
  return fd;
}

VmmAllocation::~VmmAllocation() {
  const auto* api = driver::driver_state().api;
  if (!api) return;
  if (address_) {
    api->cuMemUnmap(address_, size_);
    api->cuMemAddressFree(address_, size_);
  }
  if (handle_) api->cuMemRelease(handle_);
}

VmmAllocation& VmmAllocation::operator=(VmmAllocation&& o) noexcept {
  if (this != &o) {
    VmmAllocation dying(std::move(*this));
    handle_ = std::exchange(o.handle_, 0);
    address_ = std::exchange(o.address_, 0);
    size_ = std::exchange(o.size_, 0);
    device_ = o.device_;
  }
  return *this;
}

}  // namespace kiln::service
