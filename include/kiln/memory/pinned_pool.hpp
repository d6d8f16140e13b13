// A caching allocator of pinned host memory. cuMemHostAlloc costs about a millisecond per MiB
// (measured: 1245 µs for 1 MiB on the H100 machine), so pinned memory must be reused: blocks are
// kept in power-of-two size classes, in per-thread shards, so handing out and returning a block
// is a few tens of nanoseconds with no contention between threads.
//
// Thread safety: a PinnedPool is a handle (copies share the pool); allocate() from any number of
// threads. A PinnedBlock is owned by one thread at a time; it may be returned from any thread.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <source_location>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "kiln/core/context.hpp"

namespace kiln::memory {

// Where the pool gets memory from when it has none cached.
struct HostAllocator {
  std::function<void*(std::size_t bytes)> allocate;  // throws kiln::Error on failure
  std::function<void(void* data, std::size_t bytes)> release;
  std::string name;

  // cuMemHostAlloc, portable (pinned for every context) by default.
  static HostAllocator pinned(core::ContextRef context, bool portable = true);
  // Memory placed on one NUMA node (mmap + mbind), then pinned with cuMemHostRegister: for the
  // node closest to a GPU (the topology layer tells which).
  static HostAllocator pinned_on_numa_node(core::ContextRef context, int numa_node);
  // Plain malloc'ed memory: the pool's bookkeeping without a driver (tests, tools).
  static HostAllocator plain();
};

struct PinnedPoolOptions {
  std::size_t min_block = 4096;                 // smallest size class
  std::size_t max_cached_block = 256u << 20;    // larger requests are allocated exactly, not cached
  std::size_t max_cached_bytes = 2ull << 30;    // cached (free) bytes above this go back at once
  // What the AllocationTracker sees. false: every block the pool obtains from its allocator (tagged
  // "pinned pool", with the call site of the hand-out that needed it). true: every hand-out, with
  // the caller's tag and call site (~0.1 µs more per hand-out and return).
  bool track_hand_outs = false;
};

struct PinnedPoolStats {
  std::size_t in_use = 0;         // bytes handed out (capacity of the blocks)
  std::size_t cached = 0;         // bytes held free for reuse
  std::size_t hits = 0;           // hand-outs served from the cache
  std::size_t misses = 0;         // hand-outs that needed the allocator
  std::size_t allocator_bytes = 0;  // bytes currently obtained from the allocator
};

class PinnedPool;

// One block from the pool; returns itself to the pool when destroyed.
class PinnedBlock {
 public:
  PinnedBlock() = default;
  ~PinnedBlock() { reset(); }
  PinnedBlock(PinnedBlock&& o) noexcept
      : pool_(std::move(o.pool_)), data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)),
        size_class_(o.size_class_) {}
  PinnedBlock& operator=(PinnedBlock&& o) noexcept {
    if (this != &o) {
      reset();
      pool_ = std::move(o.pool_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      size_class_ = o.size_class_;
    }
    return *this;
  }
  PinnedBlock(const PinnedBlock&) = delete;
  PinnedBlock& operator=(const PinnedBlock&) = delete;

  void* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }  // what was asked for
  std::size_t capacity() const noexcept;               // the block's real size (its class)
  template <typename T>
  std::span<T> as() const noexcept { return {static_cast<T*>(data_), size_ / sizeof(T)}; }
  explicit operator bool() const noexcept { return data_ != nullptr; }
  void reset() noexcept;

  struct PoolState;

 private:
  friend class PinnedPool;
  PinnedBlock(std::shared_ptr<PoolState> pool, void* data, std::size_t size, int size_class)
      : pool_(std::move(pool)), data_(data), size_(size), size_class_(size_class) {}
  std::shared_ptr<PoolState> pool_;
  void* data_ = nullptr;
  std::size_t size_ = 0;
  int size_class_ = -1;  // -1: exact allocation, not cached
};

class PinnedPool {
 public:
  explicit PinnedPool(HostAllocator allocator, PinnedPoolOptions options = {});
  PinnedPool() = default;

  PinnedBlock allocate(std::size_t bytes, std::string_view tag = {},
                       std::source_location where = std::source_location::current());
  // Gives every cached block back to the allocator.
  void trim();
  PinnedPoolStats stats() const;
  // The size class a request falls in (its capacity), or 0 when it is served exactly.
  std::size_t class_size(std::size_t bytes) const noexcept;

 private:
  std::shared_ptr<PinnedBlock::PoolState> state_;
};

}  // namespace kiln::memory
