#include "kiln/memory/pinned_pool.hpp"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "core/detail/current.hpp"
#include "kiln/core/allocation_tracker.hpp"
#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::memory {

namespace {

constexpr int kShards = 16;
constexpr int kClasses = 48;

// Each thread sticks to one shard: its hand-outs and returns meet no other thread's lock.
int my_shard() {
  static std::atomic<int> next{0};
  thread_local const int shard = next.fetch_add(1, std::memory_order_relaxed) % kShards;
  return shard;
}

}  // namespace

struct PinnedBlock::PoolState {
  HostAllocator allocator;
  PinnedPoolOptions options;
  int min_class = 12;
  int max_class = 28;
  struct alignas(64) FreeList {
    std::mutex mutex;
    std::vector<void*> blocks;
  };
  std::array<std::array<FreeList, kClasses>, kShards> free_lists;
  std::atomic<std::size_t> in_use{0}, cached{0}, hits{0}, misses{0}, allocator_bytes{0};

  ~PoolState() {
    for (auto& shard : free_lists)
      for (int c = 0; c < kClasses; ++c)
        for (void* p : shard[c].blocks) release(p, std::size_t{1} << c);
  }

  // Memory obtained from and returned to the allocator, registered unless hand-outs are.
  void* obtain(std::size_t bytes, const std::source_location& where) {
    void* data = allocator.allocate(bytes);
    allocator_bytes.fetch_add(bytes, std::memory_order_relaxed);
    if (!options.track_hand_outs)
      core::AllocationTracker::instance().add(reinterpret_cast<std::uintptr_t>(data), bytes, core::AllocationKind::pinned,
                                              -1, "pinned pool", where);
    return data;
  }
  void release(void* data, std::size_t bytes) noexcept {
    if (!options.track_hand_outs) core::AllocationTracker::instance().remove(reinterpret_cast<std::uintptr_t>(data));
    allocator_bytes.fetch_sub(bytes, std::memory_order_relaxed);
    allocator.release(data, bytes);
  }

  int class_of(std::size_t bytes) const noexcept {
    if (bytes > options.max_cached_block) return -1;
    int c = static_cast<int>(std::bit_width(std::max(bytes, options.min_block) - 1));
    return std::max(c, min_class);
  }

  void give_back(void* data, std::size_t size, int size_class) noexcept {
    if (options.track_hand_outs) core::AllocationTracker::instance().remove(reinterpret_cast<std::uintptr_t>(data));
    if (size_class < 0) {
      in_use.fetch_sub(size, std::memory_order_relaxed);
      release(data, size);
      return;
    }
    const std::size_t capacity = std::size_t{1} << size_class;
    in_use.fetch_sub(capacity, std::memory_order_relaxed);
    if (cached.load(std::memory_order_relaxed) + capacity > options.max_cached_bytes) {
      release(data, capacity);
      return;
    }
    FreeList& list = free_lists[my_shard()][size_class];
    {
      std::lock_guard lock(list.mutex);
      list.blocks.push_back(data);
    }
    cached.fetch_add(capacity, std::memory_order_relaxed);
  }
};

std::size_t PinnedBlock::capacity() const noexcept { return size_class_ < 0 ? size_ : std::size_t{1} << size_class_; }

void PinnedBlock::reset() noexcept {
  if (data_) pool_->give_back(data_, size_, size_class_);
  data_ = nullptr;
  size_ = 0;
  pool_.reset();
}

PinnedPool::PinnedPool(HostAllocator allocator, PinnedPoolOptions options)
    : state_(std::make_shared<PinnedBlock::PoolState>()) {
  if (!allocator.allocate || !allocator.release) throw Error(Errc::invalid_argument, "PinnedPool needs an allocator");
  if (options.min_block == 0 || options.max_cached_block < options.min_block)
    throw Error(Errc::invalid_argument, "PinnedPool: min_block must be > 0 and <= max_cached_block");
  state_->allocator = std::move(allocator);
  state_->options = options;
  state_->min_class = static_cast<int>(std::bit_width(options.min_block - 1));
  state_->max_class = static_cast<int>(std::bit_width(options.max_cached_block - 1));
  if (state_->max_class >= kClasses) throw Error(Errc::invalid_argument, "PinnedPool: max_cached_block too large");
}

std::size_t PinnedPool::class_size(std::size_t bytes) const noexcept {
  const int c = state_ ? state_->class_of(bytes) : -1;
  return c < 0 ? 0 : std::size_t{1} << c;
}

PinnedBlock PinnedPool::allocate(std::size_t bytes, std::string_view tag, std::source_location where) {
  if (!state_) throw Error(Errc::invalid_handle, "allocate() on an empty PinnedPool");
  if (bytes == 0) throw Error(Errc::invalid_argument, "PinnedPool::allocate of 0 bytes");
  auto& s = *state_;
  const int c = s.class_of(bytes);
  void* data = nullptr;
  std::size_t capacity = bytes;
  if (c >= 0) {
    capacity = std::size_t{1} << c;
    // Own shard first, then take from the others before asking the allocator.
    const int home = my_shard();
    for (int i = 0; i < kShards && !data; ++i) {
      auto& list = s.free_lists[(home + i) % kShards][c];
      std::lock_guard lock(list.mutex);
      if (!list.blocks.empty()) {
        data = list.blocks.back();
        list.blocks.pop_back();
      }
    }
    if (data) {
      s.cached.fetch_sub(capacity, std::memory_order_relaxed);
      s.hits.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (!data) {
    data = s.obtain(capacity, where);
    s.misses.fetch_add(1, std::memory_order_relaxed);
  }
  s.in_use.fetch_add(capacity, std::memory_order_relaxed);
  if (s.options.track_hand_outs)
    core::AllocationTracker::instance().add(reinterpret_cast<std::uintptr_t>(data), capacity,
                                            core::AllocationKind::pinned, -1, tag, where);
  return PinnedBlock(state_, data, bytes, c);
}

void PinnedPool::trim() {
  if (!state_) return;
  auto& s = *state_;
  for (auto& shard : s.free_lists)
    for (int c = 0; c < kClasses; ++c) {
      std::vector<void*> blocks;
      {
        std::lock_guard lock(shard[c].mutex);
        blocks.swap(shard[c].blocks);
      }
      for (void* p : blocks) {
        s.release(p, std::size_t{1} << c);
        s.cached.fetch_sub(std::size_t{1} << c, std::memory_order_relaxed);
      }
    }
}

PinnedPoolStats PinnedPool::stats() const {
  if (!state_) return {};
  auto& s = *state_;
  return {s.in_use.load(), s.cached.load(), s.hits.load(), s.misses.load(), s.allocator_bytes.load()};
}

// ---- allocators

HostAllocator HostAllocator::pinned(core::ContextRef context, bool portable) {
  HostAllocator a;
  a.name = portable ? "cuMemHostAlloc (portable)" : "cuMemHostAlloc";
  a.allocate = [context, portable](std::size_t bytes) {
    context.make_current();
    void* p = nullptr;
    driver::check(driver::cuda().cuMemHostAlloc(&p, bytes, portable ? CU_MEMHOSTALLOC_PORTABLE : 0), "cuMemHostAlloc");
    return p;
  };
  a.release = [context](void* p, std::size_t) {
    core::detail::DestructorContext in_context(context.handle());
    if (const auto* api = driver::driver_state().api) api->cuMemFreeHost(p);
  };
  return a;
}

HostAllocator HostAllocator::pinned_on_numa_node(core::ContextRef context, int numa_node) {
  if (numa_node < 0 || numa_node >= 1024)
    throw Error(Errc::invalid_argument, "NUMA node " + std::to_string(numa_node) + " is out of range");
  HostAllocator a;
  a.name = "mmap + mbind(node " + std::to_string(numa_node) + ") + cuMemHostRegister";
  a.allocate = [context, numa_node](std::size_t bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw Error(Errc::internal, "mmap of " + std::to_string(bytes) + " bytes failed");
    unsigned long mask[1024 / (8 * sizeof(unsigned long))] = {};
    mask[numa_node / (8 * sizeof(unsigned long))] |= 1ul << (numa_node % (8 * sizeof(unsigned long)));
    constexpr int kMpolBind = 2;
    if (syscall(SYS_mbind, p, bytes, kMpolBind, mask, 1024, 0) != 0) {
      const int err = errno;
      munmap(p, bytes);
      throw Error(Errc::invalid_argument,
                  "mbind to NUMA node " + std::to_string(numa_node) + " failed: " + std::strerror(err));
    }
    std::memset(p, 0, bytes);  // place the pages now, on that node
    context.make_current();
    CUresult r = driver::cuda().cuMemHostRegister(p, bytes, CU_MEMHOSTREGISTER_PORTABLE);
    if (r != CUDA_SUCCESS) {
      munmap(p, bytes);
      driver::check(r, "cuMemHostRegister");
    }
    return p;
  };
  a.release = [context](void* p, std::size_t bytes) {
    core::detail::DestructorContext in_context(context.handle());
    if (const auto* api = driver::driver_state().api) api->cuMemHostUnregister(p);
    munmap(p, bytes);
  };
  return a;
}

HostAllocator HostAllocator::plain() {
  HostAllocator a;
  a.name = "malloc (not pinned)";
  a.allocate = [](std::size_t bytes) {
    void* p = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
    if (!p) throw Error(Errc::internal, "aligned_alloc of " + std::to_string(bytes) + " bytes failed");
    return p;
  };
  a.release = [](void* p, std::size_t) { std::free(p); };
  return a;
}

}  // namespace kiln::memory
