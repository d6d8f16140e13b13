// Memory layer on a real GPU: pools under concurrency, stream-ordered reuse, leaks, OOM, staged
// pageable copies, and resources used while another context is current.
#include <gtest/gtest.h>

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "kiln/core.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/memory/direct_resource.hpp"
#include "kiln/memory/managed_monitor.hpp"
#include "kiln/memory/out_of_memory.hpp"
#include "kiln/memory/pageable_copy.hpp"
#include "kiln/memory/pinned_pool.hpp"
#include "kiln/memory/pool_resource.hpp"
#include "support/gpu.hpp"
#include "support/nvrtc_compile.hpp"

namespace {

using namespace kiln;
using namespace kiln::memory;

constexpr const char* kKernels = R"(
extern "C" __global__ void fill(unsigned* p, unsigned v, unsigned long long n) {
  for (unsigned long long i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) p[i] = v;
}
extern "C" __global__ void slow_fill(unsigned* p, unsigned v, unsigned long long n, unsigned long long ns) {
  unsigned long long s, t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(s));
  do { asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); } while (t - s < ns);
  for (unsigned long long i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) p[i] = v;
}
extern "C" __global__ void check_fill(const unsigned* p, unsigned v, unsigned long long n, unsigned* bad) {
  for (unsigned long long i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    if (p[i] != v) atomicAdd(bad, 1u);
}
)";

class MemoryGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    KILN_REQUIRE_GPU();
    device_.emplace(core::Device::get(0));
    ctx_ = device_->primary_context();
    static const std::string cubin = kiln::testing::compile_for_test(kKernels, kiln::testing::device0_arch());
    module_ = core::Module::load(ctx_, cubin);
  }
  std::optional<core::Device> device_;
  core::ContextRef ctx_;
  core::Module module_;
};

// Not a fixture test: CUPTI's counters are set up before the first context exists (ctest runs each
// test in its own process).
TEST(ManagedMemoryGpu, MonitorCountsMigrationsOrSaysWhyNot) {
  KILN_REQUIRE_GPU();
  ManagedMemoryMonitor monitor;
  const bool started = monitor.start();
  core::ContextRef ctx = core::Device::get(0).primary_context();
  const std::size_t bytes = 64u << 20;
  core::ManagedBuffer m = core::ManagedBuffer::allocate(ctx, bytes);
  std::memset(m.host_data(), 1, bytes);  // pages on the host
  static const std::string cubin = kiln::testing::compile_for_test(kKernels, kiln::testing::device0_arch());
  core::Module module = core::Module::load(ctx, cubin);
  core::Stream s = core::Stream::create(ctx);
  core::launch(s, module.kernel("fill"), core::LaunchConfig::of(132, 256), m, 2u, static_cast<unsigned long long>(bytes / 4));
  s.synchronize();  // pages migrated to the GPU
  EXPECT_EQ(m.as_host<unsigned>()[12345], 2u);  // and back to the host
  auto c = monitor.stop();
  if (!started) {
    EXPECT_FALSE(c.supported);
    EXPECT_FALSE(c.reason.empty());
    std::printf("unified memory counters unavailable on this platform: %s\n", c.reason.c_str());
    return;
  }
  EXPECT_TRUE(c.supported);
  EXPECT_GT(c.records, 0u);
  EXPECT_GE(c.bytes_host_to_device, bytes / 2) << "the kernel touched all 64 MiB written on the host";
  EXPECT_GT(c.gpu_page_fault_groups, 0u);
  EXPECT_GT(c.cpu_page_faults, 0u);
  EXPECT_LT(c.cpu_page_faults, 1000000u) << "one count per CPU fault, not the faulting addresses";
  std::printf("managed 64 MiB round trip: %llu B host->device, %llu B device->host, %llu CPU faults, %llu GPU fault groups\n",
              static_cast<unsigned long long>(c.bytes_host_to_device), static_cast<unsigned long long>(c.bytes_device_to_host),
              static_cast<unsigned long long>(c.cpu_page_faults), static_cast<unsigned long long>(c.gpu_page_fault_groups));
}

TEST_F(MemoryGpu, ManyThreadsAllocateAndFreeOnManyStreams) {
  PoolResource pool(*device_);
  core::Kernel fill = module_.kernel("fill"), check = module_.kernel("check_fill");
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      core::Stream s = core::Stream::create(ctx_);
      core::DeviceBuffer bad = core::DeviceBuffer::allocate(ctx_, sizeof(unsigned));
      core::memset32_async(bad.data(), 0, 1, s);
      std::mt19937 rng(t);
      for (int i = 0; i < 300; ++i) {
        const std::size_t n = 1 + rng() % 100000;
        ResourceBuffer<PoolResource> b(pool, n * 4, s, "stress");
        const unsigned v = static_cast<unsigned>(t * 100000 + i);
        core::launch(s, fill, core::LaunchConfig::of(64, 256), b, v, static_cast<unsigned long long>(n));
        core::launch(s, check, core::LaunchConfig::of(64, 256), b, v, static_cast<unsigned long long>(n), bad);
      }
      unsigned bad_count = 0;
      core::copy_async(&bad_count, bad.data(), sizeof bad_count, s);
      s.synchronize();
      if (bad_count != 0) ++failures;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0) << "a buffer saw another's data";
  auto st = pool.stats();
  EXPECT_EQ(st.in_use, 0u);
  EXPECT_EQ(st.allocations, 2400u);
  EXPECT_EQ(st.deallocations, 2400u);
  EXPECT_GT(st.peak, 0u);
}

TEST_F(MemoryGpu, StreamOrderedReuseNeverHandsOutMemoryInUse) {
  PoolResource pool(*device_);
  core::Stream a = core::Stream::create(ctx_), b = core::Stream::create(ctx_);
  core::Kernel slow = module_.kernel("slow_fill"), fill = module_.kernel("fill"), check = module_.kernel("check_fill");
  const unsigned long long n = 1 << 20;
  core::DeviceBuffer bad = core::DeviceBuffer::allocate(ctx_, sizeof(unsigned));
  core::memset32(bad.data(), 0, 1, ctx_);
  for (int trial = 0; trial < 20; ++trial) {
    CUdeviceptr first = pool.allocate(n * 4, a);
    core::launch(a, slow, core::LaunchConfig::of(64, 256), first, 7u, n, 2'000'000ull);  // 2 ms
    core::launch(a, check, core::LaunchConfig::of(64, 256), first, 7u, n, bad);
    pool.deallocate(first, n * 4, a);  // ordered after the check on a
    // On another stream, with no dependency: the pool must not hand out `first` while a uses it.
    CUdeviceptr second = pool.allocate(n * 4, b);
    core::launch(b, fill, core::LaunchConfig::of(64, 256), second, 9u, n);
    pool.deallocate(second, n * 4, b);
  }
  a.synchronize();
  b.synchronize();
  unsigned bad_count = 1;
  core::copy(&bad_count, bad.data(), sizeof bad_count, ctx_);
  EXPECT_EQ(bad_count, 0u) << "memory in use by pending work was handed out again";
}

TEST_F(MemoryGpu, SameStreamReuseComesFromThePerStreamCache) {
  PoolResource pool(*device_);
  core::Stream s = core::Stream::create(ctx_), t = core::Stream::create(ctx_);
  CUdeviceptr p = pool.allocate(3 << 20, s);
  pool.deallocate(p, 3 << 20, s);
  EXPECT_EQ(pool.stats().in_use, 0u) << "a cached block is not in use";
  CUdeviceptr q = pool.allocate(3 << 20, s);
  EXPECT_EQ(q, p) << "the same size on the same stream should come back from the cache";
  EXPECT_EQ(pool.stats().in_use, 3u << 20);
  CUdeviceptr other = pool.allocate(3 << 20, t);  // another stream: never a cached block of s
  EXPECT_NE(other, q);
  pool.deallocate(q, 3 << 20, s);
  pool.deallocate(other, 3 << 20, t);
  s.synchronize();
  t.synchronize();
  pool.trim(0);
  EXPECT_LT(pool.stats().reserved, 3u << 20) << "trim() gives cached blocks back too";
  PoolResource uncached(*device_, {.stream_cache_bytes = 0});
  CUdeviceptr a = uncached.allocate(1 << 20, s);
  uncached.deallocate(a, 1 << 20, s);
  EXPECT_EQ(uncached.stats().in_use, 0u);
}

TEST_F(MemoryGpu, ReleaseThresholdAndTrim) {
  PoolResource pool(*device_);
  core::Stream s = core::Stream::create(ctx_);
  { ResourceBuffer<PoolResource> big(pool, 256u << 20, s); }
  s.synchronize();
  auto kept = pool.stats();
  EXPECT_GE(kept.reserved, 256u << 20) << "the pool keeps memory across synchronisation";
  EXPECT_EQ(kept.in_use, 0u);
  EXPECT_GT(kept.fragmentation(), 0.99);
  pool.trim(0);
  EXPECT_LT(pool.stats().reserved, 256u << 20);
}

TEST_F(MemoryGpu, ResourcesWorkWhileAnotherContextIsCurrent) {
  PoolResource pool(*device_);
  DirectResource direct(*device_);
  core::Context other = core::Context::create(device_->handle());
  core::Stream s = core::Stream::create(ctx_);
  core::CurrentContextGuard foreign(other);
  CUdeviceptr p = pool.allocate(4096, s), q = direct.allocate(4096, s);
  auto ap = core::pointer_attributes(p), aq = core::pointer_attributes(q);
  // Pool memory belongs to the device, not to a context; direct memory to the primary context.
  EXPECT_EQ(ap.device_ordinal, device_->ordinal());
  EXPECT_EQ(ap.memory_type, CU_MEMORYTYPE_DEVICE);
  EXPECT_EQ(aq.context, ctx_.handle()) << "direct memory landed in the foreign context";
  // Both are usable by a kernel of the primary context.
  core::DeviceBuffer bad = core::DeviceBuffer::allocate(ctx_, sizeof(unsigned));
  core::memset32_async(bad.data(), 0, 1, s);
  for (CUdeviceptr m : {p, q}) {
    core::launch(s, module_.kernel("fill"), core::LaunchConfig::of(4, 256), m, 5u, 1024ull);
    core::launch(s, module_.kernel("check_fill"), core::LaunchConfig::of(4, 256), m, 5u, 1024ull, bad);
  }
  unsigned bad_count = 1;
  core::copy_async(&bad_count, bad.data(), sizeof bad_count, s);
  s.synchronize();
  EXPECT_EQ(bad_count, 0u);
  pool.deallocate(p, 4096, s);
  direct.deallocate(q, 4096, s);
  s.synchronize();
}

TEST_F(MemoryGpu, PoolWorksOnAThreadWithNoContext) {
  PoolResource pool(*device_);
  core::Stream s = core::Stream::create(ctx_);
  std::thread([&] {
    kiln::driver::cuda().cuCtxSetCurrent(nullptr);
    CUdeviceptr p = pool.allocate(1 << 20, s);
    EXPECT_NE(p, 0u);
    pool.deallocate(p, 1 << 20, s);
  }).join();
  s.synchronize();
  EXPECT_EQ(pool.stats().in_use, 0u);
}

TEST_F(MemoryGpu, DeliberateLeakIsReportedWithTagAndCallSite) {
  DirectResource direct(*device_);
  core::Stream s = core::Stream::create(ctx_);
  const unsigned line = __LINE__ + 1;
  CUdeviceptr leaked = direct.allocate(1 << 20, s, "forgotten-buffer");
  std::ostringstream report;
  core::AllocationTracker::instance().report(report);
  const std::string r = report.str();
  EXPECT_NE(r.find("forgotten-buffer"), std::string::npos) << r;
  EXPECT_NE(r.find("test_memory_gpu.cpp:" + std::to_string(line)), std::string::npos) << r;
  EXPECT_NE(direct.stats().by_tag.size(), 0u);
  direct.deallocate(leaked, 1 << 20, s);
  EXPECT_EQ(core::AllocationTracker::instance().report(report = std::ostringstream{}), 0u) << report.str();
}

TEST_F(MemoryGpu, ImpossibleAllocationGivesTheOutOfMemoryError) {
  PoolResource pool(*device_);
  core::Stream s = core::Stream::create(ctx_);
  ResourceBuffer<PoolResource> held(pool, 64u << 20, s, "held-weights");
  const std::size_t impossible = device_->total_memory() * 2;
  try {
    pool.allocate(impossible, s, "too-big");
    FAIL() << "allocated twice the device's memory";
  } catch (const OutOfMemoryError& e) {
    const auto& p = e.picture();
    EXPECT_EQ(p.requested, impossible);
    EXPECT_GT(p.free, 0u);
    EXPECT_GT(p.total, p.free);
    EXPECT_GE(p.reserved, 64u << 20);
    EXPECT_GE(p.in_use, 64u << 20);
    ASSERT_FALSE(p.top_tags.empty());
    EXPECT_EQ(p.top_tags[0].tag, "held-weights");
    EXPECT_NE(std::string(e.what()).find("held-weights"), std::string::npos) << e.what();
  }
  // Admission refuses before any allocation is tried.
  EXPECT_THROW(admit(*device_, impossible, {&pool}), OutOfMemoryError);
  EXPECT_NO_THROW(admit(*device_, 1u << 20, {&pool}));
  auto a = estimate_available(*device_, {&pool});
  EXPECT_GT(a.total(), 0u);
}

TEST_F(MemoryGpu, PageableCopiesOfRandomSizesAndOffsetsMatchBothWays) {
  PageableCopier copier(ctx_, {.chunk_bytes = 1u << 20, .workers = 4, .slots_per_worker = 2, .direct_below = 64u << 10});
  core::Stream s = core::Stream::create(ctx_);
  constexpr std::size_t cap = 24u << 20;
  core::DeviceBuffer dev = core::DeviceBuffer::allocate(ctx_, cap + 8192);
  std::mt19937_64 rng(42);
  std::vector<unsigned char> host(cap + 8192), back(cap + 8192);
  for (int trial = 0; trial < 60; ++trial) {
    const std::size_t n = trial % 4 == 0 ? 1 + rng() % 5000 : 1 + rng() % cap;
    const std::size_t ho = rng() % 4096, dof = rng() % 4096;
    for (std::size_t i = 0; i < n; i += 8) {
      const auto v = rng();
      std::memcpy(&host[ho + i], &v, std::min<std::size_t>(8, n - i));
    }
    copier.to_device(dev.data() + dof, host.data() + ho, n, s);
    std::memset(back.data(), 0, back.size());
    copier.to_host(back.data() + ho, dev.data() + dof, n, s);
    ASSERT_EQ(std::memcmp(back.data() + ho, host.data() + ho, n), 0) << "trial " << trial << " n=" << n;
  }
}

TEST_F(MemoryGpu, SourceMayBeFreedRightAfterTheCall) {
  core::Stream s = core::Stream::create(ctx_);
  const std::size_t n = 32u << 20;
  core::DeviceBuffer dev = core::DeviceBuffer::allocate(ctx_, n);
  {
    std::vector<unsigned char> src(n, 0x3c);
    copy(dev.data(), src.data(), n, s);
    std::memset(src.data(), 0, n);  // overwritten (then freed) before the stream finished
  }
  std::vector<unsigned char> out(n);
  copy(out.data(), dev.data(), n, s);
  EXPECT_EQ(std::count(out.begin(), out.end(), 0x3c), static_cast<long>(n));
}

TEST_F(MemoryGpu, PinnedPoolWithRealPinnedMemory) {
  PinnedPool pool(HostAllocator::pinned(ctx_));
  PinnedBlock b = pool.allocate(1 << 20, "io");
  EXPECT_TRUE(core::pointer_attributes(b.data()).pinned_host());
  void* p = b.data();
  b.reset();
  PinnedBlock again = pool.allocate(1 << 20);
  EXPECT_EQ(again.data(), p);
  EXPECT_EQ(pool.stats().hits, 1u);
}

TEST_F(MemoryGpu, PinnedOnANumaNode) {
  PinnedPool pool(HostAllocator::pinned_on_numa_node(ctx_, 0));
  PinnedBlock b = pool.allocate(2 << 20);
  EXPECT_TRUE(core::pointer_attributes(b.data()).pinned_host());
  int node = -1;
  constexpr unsigned long kMpolFNode = 1, kMpolFAddr = 2;
  ASSERT_EQ(syscall(SYS_get_mempolicy, &node, nullptr, 0, b.data(), kMpolFNode | kMpolFAddr), 0);
  EXPECT_EQ(node, 0);
  EXPECT_THROW(HostAllocator::pinned_on_numa_node(ctx_, -1), Error);
}

}  // namespace
