#include "kiln/core/memory.hpp"

#include "core/detail/current.hpp"
#include "kiln/core/allocation_tracker.hpp"
#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::core {

using driver::check;
using driver::cuda;

namespace {

unsigned pinned_flags(const PinnedOptions& o) {
  unsigned f = 0;
  if (o.portable) f |= CU_MEMHOSTALLOC_PORTABLE;
  if (o.mapped) f |= CU_MEMHOSTALLOC_DEVICEMAP;
  if (o.write_combined) f |= CU_MEMHOSTALLOC_WRITECOMBINED;
  return f;
}

template <typename Owner>
void move_assign(Owner& self, Owner&& other) {
  if (&self != &other) {
    Owner dying(std::move(self));
    new (&self) Owner(std::move(other));
  }
}

CUdeviceptr address(const void* p) { return reinterpret_cast<CUdeviceptr>(p); }

void track(std::uintptr_t address, std::size_t bytes, AllocationKind kind, ContextRef context, std::string_view tag,
           const std::source_location& where) {
  AllocationTracker::instance().add(address, bytes, kind, static_cast<int>(context.device()), tag, where);
}
void untrack(std::uintptr_t address) noexcept { AllocationTracker::instance().remove(address); }

}  // namespace

// ---- DeviceBuffer

DeviceBuffer DeviceBuffer::allocate(ContextRef context, std::size_t bytes, std::string_view tag,
                                    std::source_location where) {
  if (bytes == 0) throw Error(Errc::invalid_argument, "DeviceBuffer::allocate of 0 bytes");
  context.make_current();
  DeviceBuffer b;
  check(cuda().cuMemAlloc(&b.ptr_, bytes), "cuMemAlloc");
  b.bytes_ = bytes;
  b.context_ = context;
  track(b.ptr_, bytes, AllocationKind::device, context, tag, where);
  return b;
}

DeviceBuffer DeviceBuffer::allocate_async(const StreamRef& stream, std::size_t bytes, std::string_view tag,
                                          std::source_location where) {
  if (bytes == 0) throw Error(Errc::invalid_argument, "DeviceBuffer::allocate_async of 0 bytes");
  stream.context().make_current();
  DeviceBuffer b;
  check(cuda().cuMemAllocAsync(&b.ptr_, bytes, stream.handle()), "cuMemAllocAsync");
  b.bytes_ = bytes;
  b.context_ = stream.context();
  b.stream_ = stream;
  track(b.ptr_, bytes, AllocationKind::device_async, b.context_, tag, where);
  return b;
}

DeviceBuffer::~DeviceBuffer() {
  if (!ptr_) return;
  untrack(ptr_);
  detail::DestructorContext in_context(context_.handle());
  const auto* api = driver::driver_state().api;
  if (stream_.handle() || stream_.context())
    api->cuMemFreeAsync(ptr_, stream_.handle());
  else
    api->cuMemFree(ptr_);
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  move_assign(*this, std::move(other));
  return *this;
}

// ---- PinnedBuffer

PinnedBuffer PinnedBuffer::allocate(ContextRef context, std::size_t bytes, PinnedOptions options,
                                    std::string_view tag, std::source_location where) {
  if (bytes == 0) throw Error(Errc::invalid_argument, "PinnedBuffer::allocate of 0 bytes");
  context.make_current();
  PinnedBuffer b;
  check(cuda().cuMemHostAlloc(&b.ptr_, bytes, pinned_flags(options)), "cuMemHostAlloc");
  b.bytes_ = bytes;
  b.context_ = context;
  if (options.mapped) {
    CUresult r = cuda().cuMemHostGetDevicePointer(&b.device_ptr_, b.ptr_, 0);
    if (r != CUDA_SUCCESS) {
      cuda().cuMemFreeHost(b.ptr_);
      b.ptr_ = nullptr;
      check(r, "cuMemHostGetDevicePointer");
    }
  }
  track(reinterpret_cast<std::uintptr_t>(b.ptr_), bytes, AllocationKind::pinned, context, tag, where);
  return b;
}

PinnedBuffer::~PinnedBuffer() {
  if (!ptr_) return;
  untrack(reinterpret_cast<std::uintptr_t>(ptr_));
  detail::DestructorContext in_context(context_.handle());
  driver::driver_state().api->cuMemFreeHost(ptr_);
}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& other) noexcept {
  move_assign(*this, std::move(other));
  return *this;
}

// ---- HostRegistration

HostRegistration HostRegistration::register_memory(ContextRef context, void* data, std::size_t bytes,
                                                   PinnedOptions options, std::string_view tag,
                                                   std::source_location where) {
  if (!data || bytes == 0) throw Error(Errc::invalid_argument, "HostRegistration of an empty range");
  context.make_current();
  unsigned flags = 0;
  if (options.portable) flags |= CU_MEMHOSTREGISTER_PORTABLE;
  if (options.mapped) flags |= CU_MEMHOSTREGISTER_DEVICEMAP;
  check(cuda().cuMemHostRegister(data, bytes, flags), "cuMemHostRegister");
  HostRegistration h;
  h.ptr_ = data;
  h.bytes_ = bytes;
  h.context_ = context;
  if (options.mapped) check(cuda().cuMemHostGetDevicePointer(&h.device_ptr_, data, 0), "cuMemHostGetDevicePointer");
  track(reinterpret_cast<std::uintptr_t>(data), bytes, AllocationKind::registered, context, tag, where);
  return h;
}

HostRegistration::~HostRegistration() {
  if (!ptr_) return;
  untrack(reinterpret_cast<std::uintptr_t>(ptr_));
  detail::DestructorContext in_context(context_.handle());
  driver::driver_state().api->cuMemHostUnregister(ptr_);
}

HostRegistration& HostRegistration::operator=(HostRegistration&& other) noexcept {
  move_assign(*this, std::move(other));
  return *this;
}

// ---- ManagedBuffer

ManagedBuffer ManagedBuffer::allocate(ContextRef context, std::size_t bytes, bool attach_global,
                                      std::string_view tag, std::source_location where) {
  if (bytes == 0) throw Error(Errc::invalid_argument, "ManagedBuffer::allocate of 0 bytes");
  context.make_current();
  ManagedBuffer b;
  check(cuda().cuMemAllocManaged(&b.ptr_, bytes, attach_global ? CU_MEM_ATTACH_GLOBAL : CU_MEM_ATTACH_HOST),
        "cuMemAllocManaged");
  b.bytes_ = bytes;
  b.context_ = context;
  track(b.ptr_, bytes, AllocationKind::managed, context, tag, where);
  return b;
}

ManagedBuffer::~ManagedBuffer() {
  if (!ptr_) return;
  untrack(ptr_);
  detail::DestructorContext in_context(context_.handle());
  driver::driver_state().api->cuMemFree(ptr_);
}

ManagedBuffer& ManagedBuffer::operator=(ManagedBuffer&& other) noexcept {
  move_assign(*this, std::move(other));
  return *this;
}

void ManagedBuffer::prefetch(Location to, const StreamRef& stream) const {
  if (!ptr_) throw Error(Errc::invalid_handle, "prefetch() on an empty ManagedBuffer");
  context_.make_current();
  CUmemLocation loc{};
  loc.type = to.type;
  loc.id = to.id;
  check(cuda().cuMemPrefetchAsync(ptr_, bytes_, loc, 0, stream.handle()), "cuMemPrefetchAsync");
}

void ManagedBuffer::advise(Advice advice, Location where, bool unset) const {
  if (!ptr_) throw Error(Errc::invalid_handle, "advise() on an empty ManagedBuffer");
  context_.make_current();
  CUmem_advise a{};
  switch (advice) {
    case Advice::read_mostly: a = unset ? CU_MEM_ADVISE_UNSET_READ_MOSTLY : CU_MEM_ADVISE_SET_READ_MOSTLY; break;
    case Advice::preferred_location:
      a = unset ? CU_MEM_ADVISE_UNSET_PREFERRED_LOCATION : CU_MEM_ADVISE_SET_PREFERRED_LOCATION;
      break;
    case Advice::accessed_by: a = unset ? CU_MEM_ADVISE_UNSET_ACCESSED_BY : CU_MEM_ADVISE_SET_ACCESSED_BY; break;
  }
  CUmemLocation loc{};
  loc.type = where.type;
  loc.id = where.id;
  check(cuda().cuMemAdvise(ptr_, bytes_, a, loc), "cuMemAdvise");
}

// ---- pointer attributes

PointerAttributes pointer_attributes(CUdeviceptr pointer) {
  CUpointer_attribute which[] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE,    CU_POINTER_ATTRIBUTE_IS_MANAGED,
                                 CU_POINTER_ATTRIBUTE_MAPPED,         CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
                                 CU_POINTER_ATTRIBUTE_DEVICE_POINTER, CU_POINTER_ATTRIBUTE_HOST_POINTER,
                                 CU_POINTER_ATTRIBUTE_CONTEXT};
  unsigned memory_type = 0;
  int managed = 0, mapped = 0, ordinal = -1;
  CUdeviceptr device_pointer = 0;
  void* host_pointer = nullptr;
  CUcontext context = nullptr;
  void* data[] = {&memory_type, &managed, &mapped, &ordinal, &device_pointer, &host_pointer, &context};
  // Memory the driver does not know (plain malloc) is not an error: the type reads 0.
  check(cuda().cuPointerGetAttributes(7, which, data, pointer), "cuPointerGetAttributes");
  PointerAttributes a;
  a.memory_type = static_cast<CUmemorytype>(memory_type);
  a.known_to_driver = memory_type != 0;
  a.managed = managed != 0;
  a.mapped = mapped != 0;
  a.device_ordinal = ordinal;
  a.device_pointer = device_pointer;
  a.host_pointer = host_pointer;
  a.context = context;
  return a;
}

PointerAttributes pointer_attributes(const void* pointer) { return pointer_attributes(address(pointer)); }

// ---- copies and memsets: unified addressing lets cuMemcpy work out the direction

void copy(CUdeviceptr dst, CUdeviceptr src, std::size_t bytes, ContextRef context) {
  context.make_current();
  check(cuda().cuMemcpy(dst, src, bytes), "cuMemcpy");
}

void copy_async(CUdeviceptr dst, CUdeviceptr src, std::size_t bytes, const StreamRef& stream) {
  stream.context().make_current();
  check(cuda().cuMemcpyAsync(dst, src, bytes, stream.handle()), "cuMemcpyAsync");
}

void copy(void* dst, const void* src, std::size_t bytes, ContextRef c) { copy(address(dst), address(src), bytes, c); }
void copy(void* dst, CUdeviceptr src, std::size_t bytes, ContextRef c) { copy(address(dst), src, bytes, c); }
void copy(CUdeviceptr dst, const void* src, std::size_t bytes, ContextRef c) { copy(dst, address(src), bytes, c); }
void copy_async(void* dst, const void* src, std::size_t bytes, const StreamRef& s) {
  copy_async(address(dst), address(src), bytes, s);
}
void copy_async(void* dst, CUdeviceptr src, std::size_t bytes, const StreamRef& s) {
  copy_async(address(dst), src, bytes, s);
}
void copy_async(CUdeviceptr dst, const void* src, std::size_t bytes, const StreamRef& s) {
  copy_async(dst, address(src), bytes, s);
}

void memset8(CUdeviceptr dst, std::uint8_t value, std::size_t count, ContextRef context) {
  context.make_current();
  check(cuda().cuMemsetD8(dst, value, count), "cuMemsetD8");
}
void memset32(CUdeviceptr dst, std::uint32_t value, std::size_t count, ContextRef context) {
  context.make_current();
  check(cuda().cuMemsetD32(dst, value, count), "cuMemsetD32");
}
void memset8_async(CUdeviceptr dst, std::uint8_t value, std::size_t count, const StreamRef& stream) {
  stream.context().make_current();
  check(cuda().cuMemsetD8Async(dst, value, count, stream.handle()), "cuMemsetD8Async");
}
void memset32_async(CUdeviceptr dst, std::uint32_t value, std::size_t count, const StreamRef& stream) {
  stream.context().make_current();
  check(cuda().cuMemsetD32Async(dst, value, count, stream.handle()), "cuMemsetD32Async");
}

}  // namespace kiln::core
