// Device memory resources: a concept and value-type implementations (DirectResource,
// PoolResource), never a base-class pointer. A resource is bound to one device and works whatever
// context is current on the calling thread: it makes its own current when it is not (and leaves it,
// as every kiln object does).
//
// Thread safety: resources are handles: copies share one state, and any number of threads may
// allocate and deallocate through them at once.
#pragma once

#include <cuda.h>

#include <concepts>
#include <cstddef>
#include <source_location>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/core/allocation_tracker.hpp"
#include "kiln/core/stream.hpp"

namespace kiln::memory {

struct ResourceStats {
  std::size_t in_use = 0;       // bytes handed out and not yet returned
  std::size_t peak = 0;         // highest in_use seen
  std::size_t reserved = 0;     // bytes the resource holds from the driver (>= in_use for a pool)
  std::size_t allocations = 0;  // count since creation
  std::size_t deallocations = 0;
  std::vector<core::TagUsage> by_tag;  // live tagged bytes of this resource's kind on its device

  // Share of reserved memory not in use: what a pool holds back.
  double fragmentation() const { return reserved == 0 ? 0.0 : double(reserved - std::min(in_use, reserved)) / double(reserved); }
};

// What every device memory resource provides. Deallocation is ordered on the given stream for
// stream-ordered resources and immediate for synchronous ones; it never throws.
template <typename R>
concept DeviceMemoryResource =
    std::copy_constructible<R> &&
    requires(R& r, const R& cr, std::size_t bytes, CUdeviceptr p, const core::StreamRef& s, std::string_view tag,
             std::source_location where) {
      { r.allocate(bytes, s, tag, where) } -> std::same_as<CUdeviceptr>;
      { r.deallocate(p, bytes, s) } noexcept;
      { cr.device_ordinal() } -> std::same_as<int>;
      { cr.stats() } -> std::same_as<ResourceStats>;
    };

// Owns one allocation from a resource; returns it (in order on its stream) when destroyed.
template <DeviceMemoryResource R>
class ResourceBuffer {
 public:
  ResourceBuffer() = default;
  ResourceBuffer(R resource, std::size_t bytes, const core::StreamRef& stream, std::string_view tag = {},
                 std::source_location where = std::source_location::current())
      : resource_(std::move(resource)), ptr_(resource_.allocate(bytes, stream, tag, where)), bytes_(bytes),
        stream_(stream) {}
  ~ResourceBuffer() {
    if (ptr_) resource_.deallocate(ptr_, bytes_, stream_);
  }
  ResourceBuffer(ResourceBuffer&& o) noexcept
      : resource_(o.resource_), ptr_(std::exchange(o.ptr_, 0)), bytes_(std::exchange(o.bytes_, 0)), stream_(o.stream_) {}
  ResourceBuffer& operator=(ResourceBuffer&& o) noexcept {
    if (this != &o) {
      ResourceBuffer dying(std::move(*this));
      resource_ = o.resource_;
      ptr_ = std::exchange(o.ptr_, 0);
      bytes_ = std::exchange(o.bytes_, 0);
      stream_ = o.stream_;
    }
    return *this;
  }
  ResourceBuffer(const ResourceBuffer&) = delete;
  ResourceBuffer& operator=(const ResourceBuffer&) = delete;

  CUdeviceptr data() const noexcept { return ptr_; }
  std::size_t size() const noexcept { return bytes_; }
  CUdeviceptr kernel_argument() const noexcept { return ptr_; }
  explicit operator bool() const noexcept { return ptr_ != 0; }

 private:
  R resource_{};
  CUdeviceptr ptr_ = 0;
  std::size_t bytes_ = 0;
  core::StreamRef stream_;
};

}  // namespace kiln::memory
