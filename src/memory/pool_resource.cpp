#include "kiln/memory/pool_resource.hpp"

#include <array>
#include <atomic>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/detail/current.hpp"
#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/memory/out_of_memory.hpp"

namespace kiln::memory {

using driver::check;
using driver::cuda;

namespace {

constexpr std::size_t kShards = 16;

// Freed blocks of one stream, by exact size.
struct StreamCache {
  std::unordered_map<std::size_t, std::vector<CUdeviceptr>> by_size;
};

struct alignas(64) CacheShard {
  std::mutex mutex;
  std::unordered_map<unsigned long long, StreamCache> streams;  // by cuStreamGetId
};

}  // namespace

struct PoolResource::State {
  State(const core::Device& d, const PoolOptions& o)
      : device(d), context(d.primary_context()), track(o.track), cache_limit(o.stream_cache_bytes) {}
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  core::Device device;
  core::ContextRef context;
  CUmemoryPool pool = nullptr;
  bool track = true;
  std::size_t cache_limit = 0;
  std::atomic<std::size_t> cached{0};
  std::array<CacheShard, kShards> shards;
  // Bytes in use and their peak come from the driver (CU_MEMPOOL_ATTR_USED_MEM_*, less what is
  // cached), so the hot path pays only for the two counts.
  std::atomic<std::size_t> allocations{0}, deallocations{0};

  // Frees every cached block. cuMemFree waits for the work that used them, whatever stream that was.
  void drop_cache() noexcept {
    const auto* api = driver::driver_state().api;
    if (!api) return;
    core::detail::DestructorContext in_context(context.handle());
    for (CacheShard& shard : shards) {
      std::lock_guard lock(shard.mutex);
      for (auto& [id, stream] : shard.streams)
        for (auto& [bytes, blocks] : stream.by_size)
          for (CUdeviceptr p : blocks) {
            api->cuMemFree(p);
            cached.fetch_sub(bytes, std::memory_order_relaxed);
          }
      shard.streams.clear();
    }
  }

  ~State() {
    if (!pool) return;
    drop_cache();
    // Memory still handed out keeps the pool alive in the driver until it is freed.
    core::detail::DestructorContext in_context(context.handle());
    driver::driver_state().api->cuMemPoolDestroy(pool);
  }
};

namespace {

unsigned long long stream_id(const driver::CudaApi& cu, CUstream stream) {
  unsigned long long id = 0;
  if (cu.cuStreamGetId(stream, &id) != CUDA_SUCCESS) return 0;
  return id;
}

}  // namespace

PoolResource::PoolResource(const core::Device& device, PoolOptions options) {
  const auto& cu = cuda();
  auto state = std::make_shared<State>(device, options);
  state->context.make_current();
  CUmemPoolProps props{};
  props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
  props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  props.location.id = device.ordinal();
  check(cu.cuMemPoolCreate(&state->pool, &props), "cuMemPoolCreate");
  cuuint64_t threshold = options.release_threshold;
  check(cu.cuMemPoolSetAttribute(state->pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &threshold), "cuMemPoolSetAttribute");
  state_ = std::move(state);
}

CUdeviceptr PoolResource::allocate(std::size_t bytes, const core::StreamRef& stream, std::string_view tag,
                                   std::source_location where) {
  if (!state_) throw Error(Errc::invalid_handle, "allocate() on an empty PoolResource");
  State& s = *state_;
  const auto& cu = cuda();
  CUdeviceptr p = 0;
  if (s.cache_limit && s.cached.load(std::memory_order_relaxed) != 0) {
    const unsigned long long id = stream_id(cu, stream.handle());
    CacheShard& shard = s.shards[id % kShards];
    std::lock_guard lock(shard.mutex);
    if (auto st = shard.streams.find(id); st != shard.streams.end())
      if (auto it = st->second.by_size.find(bytes); it != st->second.by_size.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        s.cached.fetch_sub(bytes, std::memory_order_relaxed);
      }
  }
  if (!p) {
    // The pool names its device and the stream its context, so the driver needs no current
    // context; only when it answers that one is missing (no context on this thread) is one set.
    CUresult r = cu.cuMemAllocFromPoolAsync(&p, bytes, s.pool, stream.handle());
    if (r == CUDA_ERROR_INVALID_CONTEXT) {
      s.context.make_current();
      r = cu.cuMemAllocFromPoolAsync(&p, bytes, s.pool, stream.handle());
    }
    if (r == CUDA_ERROR_OUT_OF_MEMORY && s.cached.load() != 0) {
      s.drop_cache();  // cached blocks hold memory the driver counts as used: give it back first
      r = cu.cuMemAllocFromPoolAsync(&p, bytes, s.pool, stream.handle());
    }
    if (r != CUDA_SUCCESS) [[unlikely]] {
      if (bytes == 0) throw Error(Errc::invalid_argument, "PoolResource::allocate of 0 bytes");
      if (r == CUDA_ERROR_OUT_OF_MEMORY) {
        cuuint64_t reserved = 0;
        cu.cuMemPoolGetAttribute(s.pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT, &reserved);
        throw OutOfMemoryError(picture_of(s.device, bytes, reserved), "cuMemAllocFromPoolAsync", where);
      }
      check(r, "cuMemAllocFromPoolAsync", where);
    }
  }
  s.allocations.fetch_add(1, std::memory_order_relaxed);
  if (s.track) core::AllocationTracker::instance().add(p, bytes, core::AllocationKind::pooled, s.device.ordinal(), tag, where);
  return p;
}

void PoolResource::deallocate(CUdeviceptr ptr, std::size_t bytes, const core::StreamRef& stream) noexcept {
  if (!state_ || !ptr) return;
  State& s = *state_;
  if (s.track) core::AllocationTracker::instance().remove(ptr);
  s.deallocations.fetch_add(1, std::memory_order_relaxed);
  const auto* api = driver::driver_state().api;
  if (s.cache_limit && s.cached.load(std::memory_order_relaxed) + bytes <= s.cache_limit) {
    const unsigned long long id = stream_id(*api, stream.handle());
    if (id != 0) {
      CacheShard& shard = s.shards[id % kShards];
      std::lock_guard lock(shard.mutex);
      shard.streams[id].by_size[bytes].push_back(ptr);
      s.cached.fetch_add(bytes, std::memory_order_relaxed);
      return;
    }
  }
  if (api->cuMemFreeAsync(ptr, stream.handle()) == CUDA_ERROR_INVALID_CONTEXT) {
    core::detail::DestructorContext in_context(s.context.handle());
    api->cuMemFreeAsync(ptr, stream.handle());
  }
}

int PoolResource::device_ordinal() const noexcept { return state_ ? state_->device.ordinal() : -1; }

ResourceStats PoolResource::stats() const {
  if (!state_) return {};
  ResourceStats st;
  auto attribute = [&](CUmemPool_attribute a) {
    cuuint64_t v = 0;
    check(cuda().cuMemPoolGetAttribute(state_->pool, a, &v), "cuMemPoolGetAttribute");
    return static_cast<std::size_t>(v);
  };
  const std::size_t cached = state_->cached.load(std::memory_order_relaxed);
  st.reserved = attribute(CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT);
  const std::size_t used = attribute(CU_MEMPOOL_ATTR_USED_MEM_CURRENT);
  st.in_use = used > cached ? used - cached : 0;
  st.peak = attribute(CU_MEMPOOL_ATTR_USED_MEM_HIGH);  // the driver's high mark: cached blocks count
  st.allocations = state_->allocations.load(std::memory_order_relaxed);
  st.deallocations = state_->deallocations.load(std::memory_order_relaxed);
  for (auto& t : core::AllocationTracker::instance().usage_by_tag(state_->device.ordinal()))
    if (t.tag != "(untagged)") st.by_tag.push_back(t);
  return st;
}

void PoolResource::trim(std::size_t keep_bytes) {
  if (!state_) throw Error(Errc::invalid_handle, "trim() on an empty PoolResource");
  state_->drop_cache();
  state_->context.make_current();
  check(cuda().cuMemPoolTrimTo(state_->pool, keep_bytes), "cuMemPoolTrimTo");
}

void PoolResource::set_release_threshold(std::uint64_t bytes) {
  if (!state_) throw Error(Errc::invalid_handle, "set_release_threshold() on an empty PoolResource");
  cuuint64_t v = bytes;
  check(cuda().cuMemPoolSetAttribute(state_->pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &v), "cuMemPoolSetAttribute");
}

CUmemoryPool PoolResource::handle() const noexcept { return state_ ? state_->pool : nullptr; }

}  // namespace kiln::memory
