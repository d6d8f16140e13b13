// Core layer on a real GPU: owners, contexts shared by threads, streams, events, modules, checked
// launches, memory kinds, graphs and deadline waits.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <atomic>
#include <chrono>
#include <cstring>
#include <numeric>
#include <optional>
#include <thread>
#include <vector>

#include "core/kernels.hpp"
#include "kiln/core.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"
#include "support/gpu.hpp"
#include "support/nvrtc_compile.hpp"

namespace {

using namespace kiln::core;
using namespace std::chrono_literals;

class CoreGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    KILN_REQUIRE_GPU();
    device_.emplace(Device::get(0));
    ctx_ = device_->primary_context();
    static const std::string cubin = kiln::testing::compile_for_test(kiln::testing::kCoreKernels, kiln::testing::device0_arch());
    cubin_ = &cubin;
    module_ = Module::load(ctx_, cubin);
  }

  std::vector<int> read_ints(const DeviceBuffer& b) {
    std::vector<int> v(b.size() / sizeof(int));
    copy(v.data(), b.data(), b.size(), ctx_);
    return v;
  }

  std::optional<Device> device_;
  ContextRef ctx_;
  const std::string* cubin_ = nullptr;
  Module module_;
};

// ---------------------------------------------------------------- owners

// Release is checked by the driver's view of the freed address, not by the device's free memory:
// that is device-wide, and the GPU tests run in parallel processes that allocate too.
TEST_F(CoreGpu, DeviceBufferReleasesExactlyOnce) {
  constexpr std::size_t bytes = 512u << 20;
  {
    DeviceBuffer a = DeviceBuffer::allocate(ctx_, bytes);
    DeviceBuffer b(std::move(a));  // move construction
    EXPECT_EQ(a.data(), 0u);
    EXPECT_FALSE(a);
    DeviceBuffer c;
    c = std::move(b);  // move assignment
    EXPECT_EQ(b.data(), 0u);
    auto& alias = c;
    c = std::move(alias);  // self-move keeps the buffer
    EXPECT_TRUE(c);
    EXPECT_EQ(c.size(), bytes);
    const CUdeviceptr p = c.data();
    EXPECT_EQ(pointer_attributes(p).memory_type, CU_MEMORYTYPE_DEVICE);
    c = DeviceBuffer::allocate(ctx_, 4096);  // assignment releases the old buffer
    EXPECT_FALSE(pointer_attributes(p).known_to_driver) << "the old buffer is still known to the driver";
  }
}

TEST_F(CoreGpu, StreamEventModuleOwnersMove) {
  Stream s = Stream::create(ctx_);
  CUstream raw = s.handle();
  Stream t(std::move(s));
  EXPECT_EQ(s.handle(), nullptr);
  EXPECT_EQ(t.handle(), raw);
  Stream& alias = t;
  t = std::move(alias);  // self-move
  EXPECT_EQ(t.handle(), raw);
  EXPECT_THROW(s.synchronize(), kiln::Error);  // moved-from: kiln's error, not a driver crash

  Event e = Event::create(ctx_);
  Event f;
  f = std::move(e);
  EXPECT_FALSE(e);
  f.record(t);
  t.synchronize();
  EXPECT_TRUE(f.query());
  EXPECT_THROW(e.query(), kiln::Error);

  Module m = Module::load(ctx_, *cubin_);
  Module n(std::move(m));
  EXPECT_FALSE(m);
  EXPECT_NO_THROW(n.kernel("empty"));
  EXPECT_THROW(m.kernel("empty"), kiln::Error);
}

TEST_F(CoreGpu, PinnedBufferReleasesAndIsReallyPinned) {
  PinnedBuffer p = PinnedBuffer::allocate(ctx_, 1 << 20);
  auto a = pointer_attributes(p.data());
  EXPECT_TRUE(a.pinned_host());
  void* raw = p.data();
  PinnedBuffer q(std::move(p));
  EXPECT_EQ(p.data(), nullptr);
  q = PinnedBuffer{};
  EXPECT_FALSE(pointer_attributes(raw).pinned_host()) << "freed pinned memory is still registered";

  std::vector<char> plain(1 << 16);
  EXPECT_FALSE(pointer_attributes(plain.data()).known_to_driver);
  {
    HostRegistration r = HostRegistration::register_memory(ctx_, plain.data(), plain.size());
    EXPECT_TRUE(pointer_attributes(plain.data()).pinned_host());
  }
  EXPECT_FALSE(pointer_attributes(plain.data()).known_to_driver);
}

// ---------------------------------------------------------------- shareable (VMM) buffers

namespace shareable {

std::size_t granularity(int ordinal) {
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = ordinal;
  prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
  std::size_t g = 0;
  EXPECT_EQ(kiln::driver::cuda().cuMemGetAllocationGranularity(&g, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM),
            CUDA_SUCCESS);
  return g;
}

const kiln::core::AllocationRecord* record_at(const std::vector<kiln::core::AllocationRecord>& live, CUdeviceptr p) {
  auto it = std::find_if(live.begin(), live.end(), [&](const kiln::core::AllocationRecord& r) { return r.address == p; });
  return it == live.end() ? nullptr : &*it;
}

}  // namespace shareable

TEST_F(CoreGpu, ShareableBufferRoundsUpIsTrackedAndReleasesExactlyOnce) {
  constexpr std::size_t bytes = 512u << 20;
  const std::size_t g = shareable::granularity(device_->ordinal());
  ASSERT_GT(g, 0u);
  {
    ShareableBuffer a = ShareableBuffer::allocate(ctx_, bytes + 1, "shareable-test");
    EXPECT_EQ(a.size(), (bytes + 1 + g - 1) / g * g) << "not rounded up to the granularity " << g;
    EXPECT_EQ(a.context().handle(), ctx_.handle());
    {
      const auto live = AllocationTracker::instance().live();
      const AllocationRecord* r = shareable::record_at(live, a.data());
      ASSERT_NE(r, nullptr) << "the allocation is not registered with the tracker";
      EXPECT_EQ(r->tag, "shareable-test");
      EXPECT_EQ(r->bytes, a.size());
      EXPECT_EQ(r->device, device_->ordinal());
    }
    ShareableBuffer b(std::move(a));  // move construction
    EXPECT_FALSE(a);
    EXPECT_EQ(a.size(), 0u);
    ShareableBuffer c;
    c = std::move(b);  // move assignment
    EXPECT_FALSE(b);
    auto& alias = c;
    c = std::move(alias);  // self-move keeps the buffer
    ASSERT_TRUE(c);
    const CUdeviceptr p = c.data();
    memset8(p, 0x5a, c.size(), ctx_);  // mapped read-write for the device, all of it
    unsigned char ends[2] = {};
    copy(&ends[0], p, 1, ctx_);
    copy(&ends[1], p + c.size() - 1, 1, ctx_);
    EXPECT_EQ(ends[0], 0x5a);
    EXPECT_EQ(ends[1], 0x5a);
    c = ShareableBuffer::allocate(ctx_, 1);  // assignment releases the old buffer
    EXPECT_EQ(c.size(), g);
    EXPECT_FALSE(pointer_attributes(p).known_to_driver) << "the old buffer is still mapped";
    EXPECT_EQ(shareable::record_at(AllocationTracker::instance().live(), p), nullptr) << "still tracked";
  }
}

TEST_F(CoreGpu, ShareableBufferExportedDescriptorMapsTheSameMemory) {
  constexpr int n = 1024;
  std::vector<int> values(n);
  std::iota(values.begin(), values.end(), 0);
  ShareableBuffer exporter = ShareableBuffer::allocate(ctx_, n * sizeof(int));
  copy(exporter.data(), values.data(), n * sizeof(int), ctx_);
  const int fd = exporter.export_fd();
  ASSERT_GE(fd, 0);
  // An import in this process stands in for the other process (kilnd's GPU worker).
  ShareableBuffer importer = ShareableBuffer::import(ctx_, fd, exporter.size());
  errno = 0;
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1) << "import did not close the descriptor";
  ASSERT_TRUE(importer);
  EXPECT_EQ(importer.size(), exporter.size());
  EXPECT_NE(importer.data(), exporter.data()) << "the import has its own mapping";
  Stream s = Stream::create(ctx_);
  launch(s, module_.kernel("add_one"), LaunchConfig::cover(n, 128), importer, n);
  s.synchronize();
  std::vector<int> seen(n);
  copy(seen.data(), exporter.data(), n * sizeof(int), ctx_);
  for (int i = 0; i < n; ++i) ASSERT_EQ(seen[i], i + 1) << "the exporter does not see the importer's write at " << i;
  // The physical memory lives while any handle does: the exporter going leaves the data.
  exporter = ShareableBuffer{};
  std::fill(seen.begin(), seen.end(), 0);
  copy(seen.data(), importer.data(), n * sizeof(int), ctx_);
  for (int i = 0; i < n; ++i) ASSERT_EQ(seen[i], i + 1) << "the data went with the exporter at " << i;
}

TEST_F(CoreGpu, ShareableBufferImportOfAForeignDescriptorIsAClearError) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  ::close(pipe_fds[1]);
  try {
    ShareableBuffer::import(ctx_, pipe_fds[0], shareable::granularity(device_->ordinal()));
    FAIL() << "a pipe was imported as device memory";
  } catch (const kiln::Error& e) {
    EXPECT_EQ(e.domain(), kiln::Domain::driver) << e.what();
    EXPECT_EQ(e.call(), "cuMemImportFromShareableHandle") << e.what();
  }
  errno = 0;
  EXPECT_EQ(::fcntl(pipe_fds[0], F_GETFD), -1) << "a failed import did not close its descriptor";
  EXPECT_EQ(errno, EBADF);
  // Nothing was left half made: the context still works.
  ShareableBuffer ok = ShareableBuffer::allocate(ctx_, 16);
  memset8(ok.data(), 1, 16, ctx_);
  ctx_.synchronize();
}

// ---------------------------------------------------------------- contexts and threads

TEST_F(CoreGpu, SixteenThreadsLaunchOnOneContext) {
  constexpr int threads = 16, launches = 1000, n = 256;
  Kernel add_one = module_.kernel("add_one");
  std::vector<DeviceBuffer> counters;
  for (int t = 0; t < threads; ++t) {
    counters.push_back(DeviceBuffer::allocate(ctx_, n * sizeof(int)));
    memset32(counters.back().data(), 0, n, ctx_);
  }
  std::atomic<int> errors{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      try {
        // A fresh thread has no current context: kiln makes the stream's current as needed.
        Stream s = Stream::create(ctx_);
        for (int i = 0; i < launches; ++i) launch(s, add_one, LaunchConfig::cover(n, 128), counters[t], n);
        s.synchronize();
      } catch (const kiln::Error& e) {
        ADD_FAILURE() << e.what();
        ++errors;
      }
    });
  for (auto& th : pool) th.join();
  EXPECT_EQ(errors.load(), 0);
  for (int t = 0; t < threads; ++t)
    for (int v : read_ints(counters[t])) ASSERT_EQ(v, launches) << "thread " << t;
}

TEST_F(CoreGpu, NestedGuardsRestoreTheRightContext) {
  Context other = Context::create(device_->handle());
  ASSERT_NE(other.handle(), ctx_.handle());
  kiln::driver::cuda().cuCtxSetCurrent(nullptr);
  {
    CurrentContextGuard a(ctx_);
    EXPECT_EQ(current_context().handle(), ctx_.handle());
    {
      CurrentContextGuard b(other);
      EXPECT_EQ(current_context().handle(), other.handle());
      {
        CurrentContextGuard c(other);  // already current: nothing changes
        EXPECT_EQ(current_context().handle(), other.handle());
      }
      EXPECT_EQ(current_context().handle(), other.handle());
    }
    EXPECT_EQ(current_context().handle(), ctx_.handle());
  }
  CUcontext now = nullptr;
  kiln::driver::cuda().cuCtxGetCurrent(&now);
  EXPECT_EQ(now, nullptr);
  // Guards are per thread: another thread's guard does not disturb this one.
  CurrentContextGuard mine(ctx_);
  std::thread([&] {
    CurrentContextGuard theirs(other);
    EXPECT_EQ(current_context().handle(), other.handle());
  }).join();
  EXPECT_EQ(current_context().handle(), ctx_.handle());
}

TEST_F(CoreGpu, ObjectsWorkWhateverContextIsCurrent) {
  Context other = Context::create(device_->handle());
  CurrentContextGuard foreign(other);  // kiln objects of the primary context must still work
  Stream s = Stream::create(ctx_);
  DeviceBuffer b = DeviceBuffer::allocate(ctx_, sizeof(int));
  launch(s, module_.kernel("set_value"), LaunchConfig{}, b, 42);
  s.synchronize();
  EXPECT_EQ(read_ints(b)[0], 42);
  EXPECT_EQ(current_context().handle(), ctx_.handle()) << "kiln left the context it needed current";
}

// ---------------------------------------------------------------- streams and events

TEST_F(CoreGpu, CrossStreamOrderingThroughAnEvent) {
  Stream a = Stream::create(ctx_), b = Stream::create(ctx_);
  Event done = Event::create(ctx_);
  Kernel producer = module_.kernel("spin_then_set"), consumer = module_.kernel("copy_value");
  DeviceBuffer value = DeviceBuffer::allocate(ctx_, sizeof(int)), seen = DeviceBuffer::allocate(ctx_, sizeof(int));
  for (int trial = 1; trial <= 200; ++trial) {
    launch(a, producer, LaunchConfig{}, value, trial, 20'000ull);  // 20 µs late
    done.record(a);
    b.wait(done);
    launch(b, consumer, LaunchConfig{}, value, seen);
    b.synchronize();
    ASSERT_EQ(read_ints(seen)[0], trial) << "the read on B did not see A's write";
  }
}

TEST_F(CoreGpu, StreamWaitsOnAnEventOfAnotherContext) {
  Context other = Context::create(device_->handle());
  Stream a = Stream::create(other);  // producer in the second context
  Stream b = Stream::create(ctx_);
  Event done = Event::create(other);
  Module other_module = Module::load(other, *cubin_);
  // Device memory belongs to one context; portable mapped host memory is visible to both.
  PinnedBuffer cells = PinnedBuffer::allocate(ctx_, 2 * sizeof(int), {.portable = true, .mapped = true});
  auto host = cells.as<int>();
  const CUdeviceptr value = cells.device_pointer(), seen = cells.device_pointer() + sizeof(int);
  for (int trial = 1; trial <= 50; ++trial) {
    launch(a, other_module.kernel("spin_then_set"), LaunchConfig{}, value, trial, 50'000ull);
    done.record(a);
    b.wait(done);
    launch(b, module_.kernel("copy_value"), LaunchConfig{}, value, seen);
    b.synchronize();
    ASSERT_EQ(host[1], trial);
  }
}

TEST_F(CoreGpu, TimingEventsAndCallbacks) {
  Stream s = Stream::create(ctx_);
  Event start = Event::create(ctx_, {.timing = true}), end = Event::create(ctx_, {.timing = true});
  DeviceBuffer b = DeviceBuffer::allocate(ctx_, sizeof(int));
  start.record(s);
  launch(s, module_.kernel("spin_then_set"), LaunchConfig{}, b, 1, 2'000'000ull);  // 2 ms
  end.record(s);
  std::atomic<bool> called{false};
  s.add_callback([&called] { called = true; });
  s.synchronize();
  EXPECT_GE(elapsed_ms(start, end), 1.9f);
  EXPECT_LT(elapsed_ms(start, end), 50.f);
  for (int i = 0; i < 100 && !called; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(called.load());
  Event untimed = Event::create(ctx_);
  untimed.record(s);
  s.synchronize();
  EXPECT_THROW(elapsed_ms(start, untimed), kiln::Error);
}

TEST_F(CoreGpu, StreamPriorities) {
  auto [least, greatest] = Stream::priority_range(ctx_);
  EXPECT_LE(greatest, least);
  Stream high = Stream::create(ctx_, {.non_blocking = true, .priority = greatest});
  EXPECT_EQ(high.ref().priority(), greatest);
}

// ---------------------------------------------------------------- waits with deadlines

TEST_F(CoreGpu, DeadlineWaitTimesOutOnTimeAndReportsWorkInFlight) {
  Stream s = Stream::create(ctx_);
  DeviceBuffer b = DeviceBuffer::allocate(ctx_, sizeof(int));
  launch(s, module_.kernel("spin_then_set"), LaunchConfig{}, b, 7, 300'000'000ull);  // 300 ms
  Completion c = s.completion();
  const auto t0 = Clock::now();
  WaitResult r = c.wait_for(30ms);
  const auto waited = Clock::now() - t0;
  EXPECT_EQ(r.status, WaitStatus::timed_out);
  EXPECT_GE(waited, 30ms);
  EXPECT_LT(waited, 35ms) << "the timeout came late";
  EXPECT_NE(r.in_flight.find("still running"), std::string::npos) << r.in_flight;
  EXPECT_NE(r.in_flight.find("stream"), std::string::npos) << r.in_flight;
  EXPECT_FALSE(c.done());
  // Cancellation through a stop_token.
  std::stop_source stop;
  std::thread canceller([&] {
    std::this_thread::sleep_for(20ms);
    stop.request_stop();
  });
  WaitResult cancelled = s.wait_for(10s, stop.get_token());
  canceller.join();
  EXPECT_EQ(cancelled.status, WaitStatus::cancelled);
  // The CPU time of a long wait is small: it sleeps, it does not spin.
  const std::clock_t cpu0 = std::clock();
  WaitResult later = c.wait_for(5s);
  const double cpu_s = double(std::clock() - cpu0) / CLOCKS_PER_SEC;
  EXPECT_TRUE(later.completed());
  EXPECT_TRUE(later.in_flight.empty());
  EXPECT_EQ(read_ints(b)[0], 7);
  EXPECT_LT(cpu_s, 0.1) << "a wait of ~250 ms used " << cpu_s << " s of CPU";
}

// ---------------------------------------------------------------- modules and launches

TEST_F(CoreGpu, WrongArgumentsAreRefusedAndNothingRuns) {
  Stream s = Stream::create(ctx_);
  DeviceBuffer b = DeviceBuffer::allocate(ctx_, sizeof(int));
  memset32(b.data(), 0, 1, ctx_);
  Kernel set_value = module_.kernel("set_value");
  ASSERT_EQ(set_value.parameter_sizes().size(), 2u);
  try {
    launch(s, set_value, LaunchConfig{}, b);  // one argument of two
    FAIL() << "a launch with too few arguments went through";
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(kiln::Errc::invalid_argument));
    EXPECT_NE(std::string(e.what()).find("takes 2 parameters, the launch passed 1"), std::string::npos) << e.what();
  }
  try {
    launch(s, set_value, LaunchConfig{}, b, 1.0);  // double (8 bytes) for an int (4 bytes)
    FAIL() << "a launch with a wrong argument size went through";
  } catch (const kiln::Error& e) {
    EXPECT_NE(std::string(e.what()).find("argument 1 is 8 bytes, the parameter is 4 bytes"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(launch(s, set_value, LaunchConfig{}, b, 1, 2), kiln::Error);
  s.synchronize();
  EXPECT_EQ(read_ints(b)[0], 0) << "a refused launch ran";
  launch(s, set_value, LaunchConfig{}, b, 5);
  s.synchronize();
  EXPECT_EQ(read_ints(b)[0], 5);
}

TEST_F(CoreGpu, KernelAttributesAndOccupancy) {
  Kernel k = module_.kernel("saxpy");
  auto a = k.attributes(device_->handle());
  EXPECT_GT(a.registers, 0);
  EXPECT_GT(a.max_threads_per_block, 0);
  EXPECT_LE(a.max_threads_per_block, 1024);
  EXPECT_EQ(a.binary_version, kiln::testing::device0_arch());
  auto s = suggest_block_size(k, ctx_);
  EXPECT_GT(s.block_size, 0);
  EXPECT_EQ(s.block_size % 32, 0);
  EXPECT_GT(s.min_grid_size, 0);
}

TEST_F(CoreGpu, MissingKernelAndBadImageAreClearErrors) {
  try {
    module_.kernel("no_such_kernel");
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_kernel"), std::string::npos) << e.what();
  }
  // PTX that names an instruction that does not exist: the driver's JIT log comes with the error.
  const std::string bad_ptx = ".version 8.0\n.target sm_90\n.address_size 64\n.visible .entry k() { bogus.instr; ret; }\n";
  try {
    Module::load(ctx_, std::string_view(bad_ptx.c_str(), bad_ptx.size() + 1));
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_EQ(e.domain(), kiln::Domain::driver);
    EXPECT_NE(e.detail().find("JIT error log"), std::string::npos) << e.what();
    EXPECT_NE(e.detail().find("bogus"), std::string::npos) << e.what();
  }
}

TEST_F(CoreGpu, PtxModuleLoadsAndRuns) {
  const std::string ptx = kiln::testing::compile_for_test(kiln::testing::kCoreKernels, kiln::testing::device0_arch(), true);
  Module m = Module::load(ctx_, std::string_view(ptx.c_str(), ptx.size()));
  Stream s = Stream::create(ctx_);
  DeviceBuffer b = DeviceBuffer::allocate(ctx_, sizeof(int));
  launch(s, m.kernel("set_value"), LaunchConfig{}, b, 99);
  s.synchronize();
  EXPECT_EQ(read_ints(b)[0], 99);
}

TEST_F(CoreGpu, LibraryServesEveryContext) {
  Library lib = Library::load(*cubin_);
  Kernel set_value = lib.kernel("set_value");
  EXPECT_TRUE(set_value.context_independent());
  Context other = Context::create(device_->handle());
  for (ContextRef c : {ctx_, other.ref()}) {
    Stream s = Stream::create(c);
    DeviceBuffer b = DeviceBuffer::allocate(c, sizeof(int));
    launch(s, set_value, LaunchConfig{}, b, 11);
    s.synchronize();
    int v = 0;
    copy(&v, b.data(), sizeof v, c);
    EXPECT_EQ(v, 11);
  }
  EXPECT_EQ(set_value.parameter_sizes().size(), 2u);
  EXPECT_THROW(launch(Stream::create(ctx_), set_value, LaunchConfig{}, 1), kiln::Error);
}

TEST_F(CoreGpu, ModuleKernelOnAnotherContextsStreamIsRefused) {
  Context other = Context::create(device_->handle());
  Stream s = Stream::create(other);
  DeviceBuffer b = DeviceBuffer::allocate(ctx_, sizeof(int));
  try {
    launch(s, module_.kernel("set_value"), LaunchConfig{}, b, 1);
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_NE(std::string(e.what()).find("another context"), std::string::npos) << e.what();
  }
}

TEST_F(CoreGpu, ClusterLaunch) {
  if (kiln::testing::device0_arch() < 90) GTEST_SKIP() << "clusters need sm_90";
  Stream s = Stream::create(ctx_);
  DeviceBuffer out = DeviceBuffer::allocate(ctx_, 8 * sizeof(unsigned));
  LaunchConfig c;
  c.grid = Dim3(8);
  c.block = Dim3(32);
  c.cluster = Dim3(2);
  launch(s, module_.kernel("record_cluster"), c, out);
  s.synchronize();
  std::vector<unsigned> v(8);
  copy(v.data(), out.data(), v.size() * sizeof(unsigned), ctx_);
  for (unsigned i = 0; i < 8; ++i) EXPECT_EQ(v[i], 200 + i % 2) << i;
}

// ---------------------------------------------------------------- memory kinds

TEST_F(CoreGpu, MappedHostReadAndManagedWrite) {
  constexpr int n = 4096;
  PinnedBuffer mapped = PinnedBuffer::allocate(ctx_, n * sizeof(int), {.portable = true, .mapped = true});
  ASSERT_NE(mapped.device_pointer(), 0u);
  auto in = mapped.as<int>();
  std::iota(in.begin(), in.end(), 1);
  ManagedBuffer managed = ManagedBuffer::allocate(ctx_, n * sizeof(int));
  EXPECT_TRUE(pointer_attributes(managed.data()).managed);
  Stream s = Stream::create(ctx_);
  managed.advise(Advice::preferred_location, Location::device(device_->handle()));
  managed.prefetch(Location::device(device_->handle()), s);
  launch(s, module_.kernel("double_into"), LaunchConfig::cover(n, 256), mapped.device_pointer(), managed, n);
  managed.prefetch(Location::host(), s);
  s.synchronize();
  auto out = managed.as_host<int>();
  for (int i = 0; i < n; ++i) ASSERT_EQ(out[i], 2 * (i + 1)) << i;
  managed.advise(Advice::read_mostly, Location::device(device_->handle()));
}

TEST_F(CoreGpu, CopiesBetweenEveryKind) {
  constexpr std::size_t bytes = 3 << 20;
  std::vector<unsigned char> src(bytes), dst(bytes);
  for (std::size_t i = 0; i < bytes; ++i) src[i] = static_cast<unsigned char>(i * 7 + 3);
  Stream s = Stream::create(ctx_);
  DeviceBuffer d1 = DeviceBuffer::allocate(ctx_, bytes);
  DeviceBuffer d2 = DeviceBuffer::allocate_async(s, bytes);
  PinnedBuffer pinned = PinnedBuffer::allocate(ctx_, bytes);
  ManagedBuffer managed = ManagedBuffer::allocate(ctx_, bytes);
  copy(d1.data(), src.data(), bytes, ctx_);                  // pageable -> device
  copy_async(d2.data(), d1.data(), bytes, s);                // device -> device
  copy_async(pinned.data(), d2.data(), bytes, s);            // device -> pinned
  copy_async(managed.data(), pinned.data(), bytes, s);       // pinned -> managed
  s.synchronize();
  copy(dst.data(), managed.data(), bytes, ctx_);             // managed -> pageable
  EXPECT_EQ(std::memcmp(src.data(), dst.data(), bytes), 0);
  memset8_async(d2.data() + 5, 0xab, 10, s);
  memset32_async(d1.data(), 0x01020304u, 4, s);
  s.synchronize();
  unsigned char head[16];
  copy(head, d2.data(), 16, ctx_);
  EXPECT_EQ(head[4], src[4]);
  EXPECT_EQ(head[5], 0xab);
  EXPECT_EQ(head[14], 0xab);
  EXPECT_EQ(head[15], src[15]);
  unsigned words[4];
  copy(words, d1.data(), sizeof words, ctx_);
  for (unsigned w : words) EXPECT_EQ(w, 0x01020304u);
}

TEST_F(CoreGpu, StreamOrderedBufferIsFreedInOrder) {
  Stream s = Stream::create(ctx_);
  DeviceBuffer keep = DeviceBuffer::allocate(ctx_, sizeof(int));
  for (int i = 0; i < 100; ++i) {
    DeviceBuffer scratch = DeviceBuffer::allocate_async(s, 1 << 20);
    launch(s, module_.kernel("set_value"), LaunchConfig{}, scratch, i);
    launch(s, module_.kernel("copy_value"), LaunchConfig{}, scratch, keep);
    // scratch is freed on s after the copy: no use after free even though we don't synchronise.
  }
  s.synchronize();
  EXPECT_EQ(read_ints(keep)[0], 99);
}

// ---------------------------------------------------------------- graphs

TEST_F(CoreGpu, GraphReplayMatchesEagerAndUpdatesArguments) {
  constexpr int n = 256, kernels = 10;
  Stream s = Stream::create(ctx_);
  Kernel add = module_.kernel("add_scalar");
  DeviceBuffer eager = DeviceBuffer::allocate(ctx_, n * sizeof(float));
  DeviceBuffer graphed = DeviceBuffer::allocate(ctx_, n * sizeof(float));
  memset32(eager.data(), 0, n, ctx_);
  memset32(graphed.data(), 0, n, ctx_);
  auto enqueue = [&](const DeviceBuffer& target, float v) {
    return [&, v](const StreamRef& st) {
      for (int k = 0; k < kernels; ++k) launch(st, add, LaunchConfig::of(1, n), target, v);
    };
  };
  enqueue(eager, 1.5f)(s);
  Graph g = Graph::capture(s, enqueue(graphed, 1.5f));
  EXPECT_EQ(g.node_count(), static_cast<std::size_t>(kernels));
  GraphExec exec = GraphExec::instantiate(g, ctx_);
  exec.launch(s);
  s.synchronize();
  std::vector<float> a(n), b(n);
  copy(a.data(), eager.data(), n * sizeof(float), ctx_);
  copy(b.data(), graphed.data(), n * sizeof(float), ctx_);
  EXPECT_EQ(a, b);
  EXPECT_FLOAT_EQ(b[0], 15.f);
  // Same topology, new argument: update in place, no re-instantiation.
  Graph g2 = Graph::capture(s, enqueue(graphed, 2.0f));
  ASSERT_TRUE(exec.update(g2));
  exec.launch(s);
  s.synchronize();
  copy(b.data(), graphed.data(), n * sizeof(float), ctx_);
  EXPECT_FLOAT_EQ(b[0], 35.f);
  // Another topology cannot be taken in place.
  Graph g3 = Graph::capture(s, [&](const StreamRef& st) { launch(st, add, LaunchConfig::of(1, n), graphed, 1.f); });
  EXPECT_FALSE(exec.update(g3));
}

TEST_F(CoreGpu, CaptureThatThrowsLeavesTheStreamUsable) {
  Stream s = Stream::create(ctx_);
  EXPECT_THROW(Graph::capture(s, [](const StreamRef&) { throw std::runtime_error("boom"); }), std::runtime_error);
  DeviceBuffer b = DeviceBuffer::allocate(ctx_, sizeof(int));
  launch(s, module_.kernel("set_value"), LaunchConfig{}, b, 3);
  s.synchronize();
  EXPECT_EQ(read_ints(b)[0], 3);
}

}  // namespace
