// A stream-ordered pool over cuMemPool / cuMemAllocFromPoolAsync. Freed memory is reused in stream
// order: a block freed on stream S is handed out again only after S's earlier work, so pending
// work never sees its memory reused. The release threshold says how much unused memory the pool
// keeps across synchronisations (the driver's default pool keeps none, so every synchronisation
// gives memory back and the next allocation pays for it again); trim() gives memory back on demand.
//
// In front of the driver's pool, kiln keeps freed blocks per stream (by the stream's unique id,
// never its handle, which the driver reuses) and by exact size: the next allocation of that size on
// the same stream takes one back without a driver call. That is safe by stream order alone (the
// block's last use was enqueued earlier on the same stream) and several times faster than the
// driver's own pool. Another stream never gets a cached block; the driver's pool serves it.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>

#include "kiln/core/device.hpp"
#include "kiln/memory/resource.hpp"

namespace kiln::memory {

struct PoolOptions {
  std::uint64_t release_threshold = std::numeric_limits<std::uint64_t>::max();  // keep what was reserved
  bool track = true;                      // register each allocation with the AllocationTracker
  std::size_t stream_cache_bytes = 1ull << 30;  // freed bytes kept per-stream in front of the driver; 0: none
};

class PoolResource {
 public:
  explicit PoolResource(const core::Device& device, PoolOptions options = {});
  PoolResource() = default;

  // Throws OutOfMemoryError (with the device's memory picture) when the pool cannot grow.
  CUdeviceptr allocate(std::size_t bytes, const core::StreamRef& stream, std::string_view tag = {},
                       std::source_location where = std::source_location::current());
  void deallocate(CUdeviceptr ptr, std::size_t bytes, const core::StreamRef& stream) noexcept;
  int device_ordinal() const noexcept;
  ResourceStats stats() const;

  // Returns the per-stream cache to the driver (synchronously), then gives reserved-but-unused
  // memory back to the driver until at most `keep_bytes` stay reserved.
  void trim(std::size_t keep_bytes = 0);
  void set_release_threshold(std::uint64_t bytes);
  CUmemoryPool handle() const noexcept;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

static_assert(DeviceMemoryResource<PoolResource>);

}  // namespace kiln::memory
