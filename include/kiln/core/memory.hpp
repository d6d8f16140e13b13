// Every memory kind the driver offers, with ownership in the type: move-only owners that release
// exactly once (destructors never throw), and non-owning typed views. Every allocation is
// registered with the AllocationTracker under the caller's tag and call site.
//
// Thread safety: owners are like unique_ptr: one thread moves or destroys one, any number may read
// through it or its views. Copies and memsets on different streams may run from any threads.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <source_location>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "kiln/core/context.hpp"
#include "kiln/core/stream.hpp"
#include "kiln/driver/cuda_compat.hpp"

namespace kiln::core {

// A typed, non-owning view of device memory. Passed to launch() it becomes the device pointer.
template <typename T>
class DeviceSpan {
 public:
  DeviceSpan() = default;
  DeviceSpan(CUdeviceptr data, std::size_t count) noexcept : data_(data), count_(count) {}

  CUdeviceptr data() const noexcept { return data_; }
  std::size_t size() const noexcept { return count_; }
  std::size_t size_bytes() const noexcept { return count_ * sizeof(T); }
  bool empty() const noexcept { return count_ == 0; }
  DeviceSpan subspan(std::size_t offset, std::size_t count) const noexcept {
    return {data_ + offset * sizeof(T), count};
  }
  T* kernel_argument() const noexcept { return reinterpret_cast<T*>(data_); }

 private:
  CUdeviceptr data_ = 0;
  std::size_t count_ = 0;
};

// Device memory: allocated synchronously (cuMemAlloc) or in stream order (cuMemAllocAsync). A
// stream-ordered buffer is freed in order on the stream it was allocated on (cuMemFreeAsync), so
// work already enqueued there may still use it; a synchronous one is freed with cuMemFree.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  static DeviceBuffer allocate(ContextRef context, std::size_t bytes, std::string_view tag = {},
                               std::source_location where = std::source_location::current());
  static DeviceBuffer allocate_async(const StreamRef& stream, std::size_t bytes, std::string_view tag = {},
                                     std::source_location where = std::source_location::current());
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : ptr_(std::exchange(other.ptr_, 0)), bytes_(std::exchange(other.bytes_, 0)),
        context_(std::exchange(other.context_, {})), stream_(std::exchange(other.stream_, {})) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  CUdeviceptr data() const noexcept { return ptr_; }
  std::size_t size() const noexcept { return bytes_; }
  ContextRef context() const noexcept { return context_; }
  explicit operator bool() const noexcept { return ptr_ != 0; }
  template <typename T>
  DeviceSpan<T> as() const noexcept { return {ptr_, bytes_ / sizeof(T)}; }
  CUdeviceptr kernel_argument() const noexcept { return ptr_; }

 private:
  CUdeviceptr ptr_ = 0;
  std::size_t bytes_ = 0;
  ContextRef context_;
  StreamRef stream_;  // set for stream-ordered buffers
};

struct PinnedOptions {
  bool portable = true;        // pinned for every context, not only the current one
  bool mapped = false;         // also mapped into the device address space
  bool write_combined = false;  // fast host writes and PCIe reads; very slow host reads
};

// Page-locked host memory (cuMemHostAlloc).
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  static PinnedBuffer allocate(ContextRef context, std::size_t bytes, PinnedOptions options = {},
                               std::string_view tag = {},
                               std::source_location where = std::source_location::current());
  ~PinnedBuffer();
  PinnedBuffer(PinnedBuffer&& other) noexcept
      : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)),
        device_ptr_(std::exchange(other.device_ptr_, 0)), context_(std::exchange(other.context_, {})) {}
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  void* data() const noexcept { return ptr_; }
  std::size_t size() const noexcept { return bytes_; }
  template <typename T>
  std::span<T> as() const noexcept { return {static_cast<T*>(ptr_), bytes_ / sizeof(T)}; }
  // The device address of a mapped buffer; 0 when not mapped.
  CUdeviceptr device_pointer() const noexcept { return device_ptr_; }
  explicit operator bool() const noexcept { return ptr_ != nullptr; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
  CUdeviceptr device_ptr_ = 0;
  ContextRef context_;
};

// Pins existing host memory (cuMemHostRegister) for the lifetime of the object. The memory itself
// stays the caller's and must outlive the registration.
class HostRegistration {
 public:
  HostRegistration() = default;
  static HostRegistration register_memory(ContextRef context, void* data, std::size_t bytes,
                                          PinnedOptions options = {}, std::string_view tag = {},
                                          std::source_location where = std::source_location::current());
  ~HostRegistration();
  HostRegistration(HostRegistration&& other) noexcept
      : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)),
        device_ptr_(std::exchange(other.device_ptr_, 0)), context_(std::exchange(other.context_, {})) {}
  HostRegistration& operator=(HostRegistration&& other) noexcept;
  HostRegistration(const HostRegistration&) = delete;
  HostRegistration& operator=(const HostRegistration&) = delete;

  void* data() const noexcept { return ptr_; }
  std::size_t size() const noexcept { return bytes_; }
  CUdeviceptr device_pointer() const noexcept { return device_ptr_; }
  explicit operator bool() const noexcept { return ptr_ != nullptr; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
  CUdeviceptr device_ptr_ = 0;
  ContextRef context_;
};

// Where managed memory should live or be prefetched to.
struct Location {
  static Location host() { return {driver::compat::mem_location_type_host, 0}; }
  static Location device(CUdevice d) { return {CU_MEM_LOCATION_TYPE_DEVICE, static_cast<int>(d)}; }
  CUmemLocationType type;
  int id;
};

enum class Advice { read_mostly, preferred_location, accessed_by };

// Unified (managed) memory, migrated on demand between host and device (cuMemAllocManaged).
class ManagedBuffer {
 public:
  ManagedBuffer() = default;
  static ManagedBuffer allocate(ContextRef context, std::size_t bytes, bool attach_global = true,
                                std::string_view tag = {},
                                std::source_location where = std::source_location::current());
  ~ManagedBuffer();
  ManagedBuffer(ManagedBuffer&& other) noexcept
      : ptr_(std::exchange(other.ptr_, 0)), bytes_(std::exchange(other.bytes_, 0)),
        context_(std::exchange(other.context_, {})) {}
  ManagedBuffer& operator=(ManagedBuffer&& other) noexcept;
  ManagedBuffer(const ManagedBuffer&) = delete;
  ManagedBuffer& operator=(const ManagedBuffer&) = delete;

  CUdeviceptr data() const noexcept { return ptr_; }
  void* host_data() const noexcept { return reinterpret_cast<void*>(ptr_); }
  std::size_t size() const noexcept { return bytes_; }
  template <typename T>
  std::span<T> as_host() const noexcept { return {reinterpret_cast<T*>(ptr_), bytes_ / sizeof(T)}; }
  CUdeviceptr kernel_argument() const noexcept { return ptr_; }
  explicit operator bool() const noexcept { return ptr_ != 0; }

  // Migrates the pages ahead of use, in order on `stream`.
  void prefetch(Location to, const StreamRef& stream) const;
  void advise(Advice advice, Location where, bool unset = false) const;

 private:
  CUdeviceptr ptr_ = 0;
  std::size_t bytes_ = 0;
  ContextRef context_;
};

// What the driver knows of any pointer: "is this buffer really pinned?"
struct PointerAttributes {
  CUmemorytype memory_type{};  // 0 when the driver does not know the pointer (plain pageable memory)
  bool known_to_driver = false;
  bool managed = false;
  bool mapped = false;
  int device_ordinal = -1;
  CUdeviceptr device_pointer = 0;
  void* host_pointer = nullptr;
  CUcontext context = nullptr;

  bool pinned_host() const noexcept { return known_to_driver && memory_type == CU_MEMORYTYPE_HOST; }
};
PointerAttributes pointer_attributes(const void* pointer);
PointerAttributes pointer_attributes(CUdeviceptr pointer);

// Copies between any kinds (unified addressing works out the direction). The async forms are
// ordered on `stream`; with pageable host memory the driver may return before the copy is done
// only for host-to-device of small sizes, so synchronise before reusing the host buffer.
void copy(void* dst, const void* src, std::size_t bytes, ContextRef context);
void copy_async(void* dst, const void* src, std::size_t bytes, const StreamRef& stream);
void copy(CUdeviceptr dst, CUdeviceptr src, std::size_t bytes, ContextRef context);
void copy_async(CUdeviceptr dst, CUdeviceptr src, std::size_t bytes, const StreamRef& stream);
void copy(void* dst, CUdeviceptr src, std::size_t bytes, ContextRef context);
void copy(CUdeviceptr dst, const void* src, std::size_t bytes, ContextRef context);
void copy_async(void* dst, CUdeviceptr src, std::size_t bytes, const StreamRef& stream);
void copy_async(CUdeviceptr dst, const void* src, std::size_t bytes, const StreamRef& stream);

void memset8(CUdeviceptr dst, std::uint8_t value, std::size_t count, ContextRef context);
void memset32(CUdeviceptr dst, std::uint32_t value, std::size_t count, ContextRef context);
void memset8_async(CUdeviceptr dst, std::uint8_t value, std::size_t count, const StreamRef& stream);
void memset32_async(CUdeviceptr dst, std::uint32_t value, std::size_t count, const StreamRef& stream);

}  // namespace kiln::core
