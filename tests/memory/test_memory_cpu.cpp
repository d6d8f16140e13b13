// Memory layer without a GPU. The pinned pool's bookkeeping and the staging engine's chunking are
// the same code that runs on the GPU; here they run over plain host memory (HostAllocator::plain()
// and a backend whose "device" is a host array and whose DMA is an immediate memcpy). That fake is
// only for what cannot exist here: pinned memory and a copy engine.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "kiln/core/allocation_tracker.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/memory/detail/staging_engine.hpp"
#include "kiln/memory/detail/streaming_copy.hpp"
#include "kiln/memory/managed_monitor.hpp"
#include "kiln/memory/out_of_memory.hpp"
#include "kiln/memory/pinned_pool.hpp"

namespace {

using namespace kiln::memory;

// ---------------------------------------------------------------- pinned pool bookkeeping

TEST(PinnedPoolBookkeeping, SizeClassesAndReuse) {
  PinnedPool pool(HostAllocator::plain(), {.min_block = 4096, .max_cached_block = 1 << 20});
  EXPECT_EQ(pool.class_size(1), 4096u);
  EXPECT_EQ(pool.class_size(4096), 4096u);
  EXPECT_EQ(pool.class_size(4097), 8192u);
  EXPECT_EQ(pool.class_size(1 << 20), 1u << 20);
  EXPECT_EQ(pool.class_size((1 << 20) + 1), 0u) << "above the largest class: served exactly";

  void* first = nullptr;
  {
    PinnedBlock a = pool.allocate(5000);
    EXPECT_EQ(a.size(), 5000u);
    EXPECT_EQ(a.capacity(), 8192u);
    std::memset(a.data(), 0x5a, a.capacity());
    first = a.data();
    EXPECT_EQ(pool.stats().in_use, 8192u);
    EXPECT_EQ(pool.stats().misses, 1u);
  }
  EXPECT_EQ(pool.stats().in_use, 0u);
  EXPECT_EQ(pool.stats().cached, 8192u);
  PinnedBlock b = pool.allocate(6000);  // same class: the cached block comes back
  EXPECT_EQ(b.data(), first);
  EXPECT_EQ(pool.stats().hits, 1u);
  PinnedBlock c = pool.allocate(6000);  // none cached now: a new one
  EXPECT_NE(c.data(), first);
  EXPECT_EQ(pool.stats().misses, 2u);
}

TEST(PinnedPoolBookkeeping, ExactBlocksAndCacheCapAndTrim) {
  PinnedPool pool(HostAllocator::plain(), {.min_block = 4096, .max_cached_block = 64 << 10,
                                           .max_cached_bytes = 128 << 10});
  { PinnedBlock big = pool.allocate(100 << 10); EXPECT_EQ(big.capacity(), 100u << 10); }
  EXPECT_EQ(pool.stats().cached, 0u) << "exact blocks are not cached";
  EXPECT_EQ(pool.stats().allocator_bytes, 0u);
  {
    std::vector<PinnedBlock> blocks;
    for (int i = 0; i < 4; ++i) blocks.push_back(pool.allocate(64 << 10));
  }
  EXPECT_EQ(pool.stats().cached, 128u << 10) << "the cap keeps two 64 KiB blocks, releases two";
  EXPECT_EQ(pool.stats().allocator_bytes, 128u << 10);
  pool.trim();
  EXPECT_EQ(pool.stats().cached, 0u);
  EXPECT_EQ(pool.stats().allocator_bytes, 0u);
}

TEST(PinnedPoolBookkeeping, ManyThreadsKeepTheBooksStraight) {
  PinnedPool pool(HostAllocator::plain(), {});
  std::atomic<int> corrupt{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::vector<PinnedBlock> held;
      for (int i = 0; i < 2000; ++i) {
        const std::size_t n = 1 + rng() % (256 << 10);
        PinnedBlock b = pool.allocate(n);
        auto* p = static_cast<unsigned char*>(b.data());
        p[0] = static_cast<unsigned char>(t);
        p[n - 1] = static_cast<unsigned char>(t);
        held.push_back(std::move(b));
        if (held.size() > 8) {
          const auto& h = held.front();
          auto* q = static_cast<unsigned char*>(h.data());
          if (q[0] != t || q[h.size() - 1] != t) ++corrupt;  // another thread got the same block
          held.erase(held.begin());
        }
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(corrupt.load(), 0);
  auto s = pool.stats();
  EXPECT_EQ(s.in_use, 0u);
  EXPECT_EQ(s.cached, s.allocator_bytes);
  EXPECT_GT(s.hits, s.misses) << "blocks were not reused";
}

TEST(PinnedPoolBookkeeping, BadOptionsAndZeroBytes) {
  EXPECT_THROW(PinnedPool(HostAllocator::plain(), {.min_block = 0}), kiln::Error);
  EXPECT_THROW(PinnedPool(HostAllocator{}, {}), kiln::Error);
  PinnedPool pool(HostAllocator::plain());
  EXPECT_THROW(pool.allocate(0), kiln::Error);
  PinnedPool empty;
  EXPECT_THROW(empty.allocate(16), kiln::Error);
}

TEST(PinnedPoolBookkeeping, BlocksAreTrackedWhenObtainedNotWhenReused) {
  PinnedPool pool(HostAllocator::plain());
  auto& tracker = kiln::core::AllocationTracker::instance();
  auto listed = [&](const void* p) {
    for (const auto& r : tracker.live())
      if (r.address == reinterpret_cast<std::uintptr_t>(p)) return r.tag;
    return std::string("(not listed)");
  };
  PinnedBlock b = pool.allocate(1000, "ignored-tag");
  const void* p = b.data();
  EXPECT_EQ(listed(p), "pinned pool") << "the block obtained from the allocator is registered";
  b.reset();
  EXPECT_EQ(listed(p), "pinned pool") << "a cached block is still kiln's memory";
  pool.trim();
  EXPECT_EQ(listed(p), "(not listed)") << "released to the allocator: gone from the tracker";
}

TEST(PinnedPoolBookkeeping, TrackedHandOutsCarryTagAndCallSite) {
  PinnedPool pool(HostAllocator::plain(), {.track_hand_outs = true});
  const int line = __LINE__ + 1;
  PinnedBlock b = pool.allocate(1000, "request-42");
  bool found = false;
  for (const auto& r : kiln::core::AllocationTracker::instance().live())
    if (r.address == reinterpret_cast<std::uintptr_t>(b.data())) {
      found = true;
      EXPECT_EQ(r.tag, "request-42");
      EXPECT_EQ(r.where.line(), static_cast<unsigned>(line));
      EXPECT_EQ(r.kind, kiln::core::AllocationKind::pinned);
    }
  EXPECT_TRUE(found);
  const void* p = b.data();
  b.reset();
  for (const auto& r : kiln::core::AllocationTracker::instance().live())
    EXPECT_NE(r.address, reinterpret_cast<std::uintptr_t>(p)) << "a returned block is still listed";
}

// ---------------------------------------------------------------- staging engine chunking

// "Device" memory is a host array; DMA is an immediate memcpy; completion markers are no-ops.
struct PlainBackend {
  std::vector<unsigned char>* device;
  std::atomic<int>* bound;
  struct Slot {
    std::vector<unsigned char> buffer;
  };
  Slot make_slot(std::size_t bytes) { return {std::vector<unsigned char>(bytes)}; }
  void* staging(Slot& s) { return s.buffer.data(); }
  void bind_thread() { ++*bound; }
  void to_device(int, std::uint64_t dst, const void* src, std::size_t n) { std::memcpy(device->data() + dst, src, n); }
  void to_host(int, void* dst, std::uint64_t src, std::size_t n) { std::memcpy(dst, device->data() + src, n); }
  void mark(Slot&, int) {}
  void wait(Slot&) {}
};

TEST(StagingChunks, PlanCoversEveryByteOnce) {
  for (bool ramp : {false, true})
    for (std::size_t chunk : {4096ul, 2ul << 20})
      for (std::size_t total : {0ul, 1ul, 4095ul, 4096ul, 4097ul, 10'000'000ul, 256ul << 20, (256ul << 20) + 12345}) {
        auto plan = detail::plan_chunks(total, chunk, ramp);
        std::size_t covered = 0;
        for (std::size_t i = 0; i < plan.count(); ++i) {
          EXPECT_EQ(plan.offset(i), covered);
          EXPECT_GT(plan.length(i), 0u);
          EXPECT_LE(plan.length(i), chunk);
          covered += plan.length(i);
        }
        EXPECT_EQ(covered, total) << "chunk " << chunk << " ramp " << ramp;
      }
}

TEST(StagingChunks, RampStartsAndEndsWithSmallChunks) {
  const std::size_t chunk = 2u << 20, total = 256u << 20;
  auto plan = detail::plan_chunks(total, chunk, true);
  ASSERT_GE(plan.count(), 8u);
  const std::vector<std::size_t> head = {chunk / 8, chunk / 4, chunk / 2, chunk};
  for (std::size_t i = 0; i < head.size(); ++i) EXPECT_EQ(plan.length(i), head[i]) << "chunk " << i;
  for (std::size_t i = 0; i + 1 < head.size(); ++i)  // the middle's remainder comes just before the tail ramp
    EXPECT_EQ(plan.length(plan.count() - 1 - i), head[i]) << "chunk " << plan.count() - 1 - i;
  auto flat = detail::plan_chunks(total, chunk, false);
  EXPECT_EQ(flat.count(), total / chunk);
  EXPECT_EQ(detail::plan_chunks(3 * chunk, chunk, true).count(), 3u) << "a copy of under four chunks is not ramped";
}

// Streaming stores copy exactly the bytes memcpy would, for any alignment of either side and any
// size, and write nothing outside the destination.
TEST(StreamingCopy, EqualsMemcpyForEveryAlignmentAndSize) {
  std::mt19937 rng(99);
  std::vector<unsigned char> src(1 << 20), dst(1 << 20);
  for (auto& b : src) b = static_cast<unsigned char>(rng());
  for (std::size_t n : {0ul, 1ul, 63ul, 64ul, 4095ul, 4096ul, 4097ul, 65536ul + 77, 500'000ul})
    for (std::size_t so : {0ul, 1ul, 31ul, 64ul})
      for (std::size_t dof : {0ul, 3ul, 32ul, 63ul}) {
        std::fill(dst.begin(), dst.end(), 0xee);
        kiln::memory::detail::streaming_copy(dst.data() + dof, src.data() + so, n);
        ASSERT_EQ(std::memcmp(dst.data() + dof, src.data() + so, n), 0) << n << " " << so << " " << dof;
        if (dof > 0) {
          ASSERT_EQ(dst[dof - 1], 0xee);
        }
        ASSERT_EQ(dst[dof + n], 0xee) << "wrote past the end: n " << n;
      }
}

TEST(StagingChunks, RandomSizesAndOffsetsBothWays) {
  std::vector<unsigned char> device(8 << 20);
  std::atomic<int> bound{0};
  detail::StagingEngine<PlainBackend, int> engine(PlainBackend{&device, &bound}, 4, 2, 64 << 10);
  std::mt19937 rng(1234);
  std::vector<unsigned char> host(4 << 20), back(4 << 20);
  for (int trial = 0; trial < 200; ++trial) {
    const std::size_t n = trial % 3 == 0 ? rng() % 300 : rng() % (3 << 20);
    const std::size_t host_offset = rng() % 4093, device_offset = rng() % 4093;  // unaligned ends
    for (std::size_t i = 0; i < n; ++i) host[host_offset + i] = static_cast<unsigned char>(rng());
    engine.copy(detail::Direction::to_device, host.data() + host_offset, device_offset, n, 0);
    ASSERT_EQ(std::memcmp(device.data() + device_offset, host.data() + host_offset, n), 0) << "trial " << trial;
    std::memset(back.data(), 0xee, back.size());
    engine.copy(detail::Direction::to_host, back.data() + host_offset, device_offset, n, 0);
    ASSERT_EQ(std::memcmp(back.data() + host_offset, host.data() + host_offset, n), 0) << "trial " << trial;
    if (host_offset > 0) {
      ASSERT_EQ(back[host_offset - 1], 0xee) << "wrote before the destination";
    }
    ASSERT_EQ(back[host_offset + n], 0xee) << "wrote past the destination";
  }
  EXPECT_EQ(bound.load(), 4) << "every worker binds its thread once";
}

struct FailingBackend : PlainBackend {
  void to_device(int, std::uint64_t, const void*, std::size_t) { throw kiln::Error(kiln::Errc::internal, "DMA failed"); }
};

TEST(StagingChunks, AFailingChunkFailsTheCopyAndTheEngineGoesOn) {
  std::vector<unsigned char> device(1 << 20);
  std::atomic<int> bound{0};
  detail::StagingEngine<FailingBackend, int> engine(FailingBackend{{&device, &bound}}, 2, 2, 4096);
  std::vector<unsigned char> host(100'000, 1);
  EXPECT_THROW(engine.copy(detail::Direction::to_device, host.data(), 0, host.size(), 0), kiln::Error);
  std::vector<unsigned char> back(100'000);
  EXPECT_NO_THROW(engine.copy(detail::Direction::to_host, back.data(), 0, back.size(), 0));
}

// ---------------------------------------------------------------- tracking, OOM text, no driver

TEST(Tracking, ReportNamesTagAndCallSite) {
  auto& t = kiln::core::AllocationTracker::instance();
  const std::uintptr_t fake = 0x7f0000001000;  // an address, recorded only; nothing is allocated
  t.add(fake, 4096, kiln::core::AllocationKind::device, 3, "leaky-tag", std::source_location::current());
  std::ostringstream out;
  EXPECT_GE(t.report(out), 1u);
  EXPECT_NE(out.str().find("leaky-tag"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("test_memory_cpu.cpp"), std::string::npos) << out.str();
  auto tags = t.usage_by_tag(3);
  ASSERT_FALSE(tags.empty());
  EXPECT_EQ(tags[0].tag, "leaky-tag");
  t.remove(fake);
  EXPECT_TRUE(t.usage_by_tag(3).empty());
  t.set_enabled(false);
  t.add(fake, 1, kiln::core::AllocationKind::device, 3, "off", std::source_location::current());
  EXPECT_TRUE(t.usage_by_tag(3).empty()) << "tracking was off";
  t.set_enabled(true);
}

TEST(OutOfMemory, MessageStatesTheFacts) {
  MemoryPicture p;
  p.device = 0;
  p.device_name = "NVIDIA H100 80GB HBM3";
  p.requested = 100ull << 30;
  p.free = 78ull << 30;
  p.total = 80ull << 30;
  p.reserved = 512ull << 20;
  p.in_use = 256ull << 20;
  p.top_tags = {{"weights", 200ull << 20, 3}, {"scratch", 56ull << 20, 9}};
  OutOfMemoryError e(p, "cuMemAllocFromPoolAsync");
  const std::string what = e.what();
  EXPECT_TRUE(e.is(kiln::Domain::driver, CUDA_ERROR_OUT_OF_MEMORY));
  for (const char* s : {"Tried to allocate 100.00 GiB on device 0 (NVIDIA H100 80GB HBM3)", "78.00 GiB free of 80.00 GiB",
                        "reserve 512.00 MiB", "256.00 MiB in use", "weights 200.00 MiB", "scratch 56.00 MiB"})
    EXPECT_NE(what.find(s), std::string::npos) << s << "\n" << what;
  EXPECT_EQ(e.picture().requested, 100ull << 30);
  const kiln::Error& base = e;  // catchable as kiln::Error
  EXPECT_EQ(base.name(), "CUDA_ERROR_OUT_OF_MEMORY");
}

TEST(MemoryNoDriver, ManagedMonitorSaysWhyItCannotCount) {
  if (kiln::driver::driver_state().api) GTEST_SKIP() << "a driver is installed here";
  ManagedMemoryMonitor monitor;
  EXPECT_FALSE(monitor.start());
  auto c = monitor.stop();
  EXPECT_FALSE(c.supported);
  EXPECT_NE(c.reason.find("CUPTI"), std::string::npos) << c.reason;
  EXPECT_EQ(c.records, 0u);
}

TEST(MemoryNoDriver, PinnedAllocatorFailsClearly) {
  if (kiln::driver::driver_state().api) GTEST_SKIP() << "a driver is installed here";
  kiln::core::ContextRef fake(reinterpret_cast<CUcontext>(0x1), 0);
  PinnedPool pool(HostAllocator::pinned(fake), {});
  try {
    pool.allocate(4096);
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(kiln::Errc::driver_not_found)) << e.what();
  }
  EXPECT_EQ(pool.stats().in_use, 0u) << "a failed hand-out must not count";
}

}  // namespace
