// The C ABI on a GPU: saxpy end to end through buffers, pinned memory and staged copies; checked
// launches that refuse bad arguments before launching; waits with deadlines and cancellation;
// events; managed memory; many threads launching on one context; any destruction order.
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "c_abi_support.hpp"

namespace {

using kiln_c_test::Error;

const char* kSource = R"(
template <typename T>
__global__ void saxpy(T a, const T* x, T* y, unsigned n) {
  unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
extern "C" __global__ void spin(long long cycles) {
  long long start = clock64();
  while (clock64() - start < cycles) {}
}
extern "C" __global__ void add_one(unsigned* counter) { atomicAdd(counter, 1u); }
)";

// Everything the tests need on device 0, made once.
struct Gpu {
  kiln_cache* cache = nullptr;
  kiln_module* module = nullptr;
  kiln_kernel* saxpy = nullptr;
  kiln_kernel* spin = nullptr;
  kiln_kernel* add_one = nullptr;

  Gpu() {
    Error e;
    kiln_cache_options o;
    kiln_cache_options_init(&o);
    o.use_disk = 0;
    EXPECT_EQ(kiln_cache_create(&o, &cache, &e), KILN_OK) << e.text();
    kiln_program p;
    kiln_program_init(&p);
    p.source = kSource;
    const char* expressions[] = {"saxpy<float>"};
    p.name_expressions = expressions;
    p.name_expression_count = 1;
    kiln_target target{};
    EXPECT_EQ(kiln_target_for_device(0, &target, &e), KILN_OK) << e.text();
    kiln_image* image = nullptr;
    EXPECT_EQ(kiln_compile(cache, &p, target, &image, nullptr, &e), KILN_OK) << e.text();
    EXPECT_EQ(kiln_module_load(image, 0, &module, &e), KILN_OK) << e.text();
    kiln_image_destroy(image);  // the module does not need it
    EXPECT_EQ(kiln_module_get_kernel(module, "saxpy<float>", &saxpy, &e), KILN_OK) << e.text();
    EXPECT_EQ(kiln_module_get_kernel(module, "spin", &spin, &e), KILN_OK) << e.text();
    EXPECT_EQ(kiln_module_get_kernel(module, "add_one", &add_one, &e), KILN_OK) << e.text();
  }
  ~Gpu() {
    kiln_kernel_destroy(saxpy);
    kiln_kernel_destroy(spin);
    kiln_kernel_destroy(add_one);
    kiln_module_destroy(module);
    kiln_cache_destroy(cache);
  }
};

Gpu& gpu() {
  static Gpu g;
  return g;
}

struct Stream {
  kiln_stream* handle = nullptr;
  Stream() {
    Error e;
    EXPECT_EQ(kiln_stream_create(0, 0, &handle, &e), KILN_OK) << e.text();
  }
  ~Stream() { kiln_stream_destroy(handle); }
};

// A packed argument block: each argument at the next multiple of KILN_ARGUMENT_ALIGNMENT.
struct Arguments {
  std::vector<unsigned char> bytes;
  std::vector<size_t> sizes;
  template <typename T>
  Arguments& add(const T& value) {
    const std::size_t offset = bytes.size();
    bytes.resize(offset + (sizeof(T) + KILN_ARGUMENT_ALIGNMENT - 1) / KILN_ARGUMENT_ALIGNMENT * KILN_ARGUMENT_ALIGNMENT);
    std::memcpy(bytes.data() + offset, &value, sizeof(T));
    sizes.push_back(sizeof(T));
    return *this;
  }
};

kiln_launch_config cover(unsigned n, unsigned block = 256) {
  kiln_launch_config c{};
  c.size = sizeof c;
  c.grid[0] = (n + block - 1) / block;
  c.block[0] = block;
  return c;
}

TEST(CAbiGpu, ABorrowedStreamCarriesKilnWorkAndStaysItsOwners) {
  KILN_C_REQUIRE_GPU();
  Error e;
  kiln_stream* borrowed = nullptr;
  // 0: the legacy default stream of the device's primary context, which nobody may destroy.
  ASSERT_EQ(kiln_stream_borrow(0, 0, &borrowed, &e), KILN_OK) << e.text();
  EXPECT_EQ(kiln_stream_device(borrowed), 0);
  EXPECT_EQ(kiln_stream_handle(borrowed), uint64_t{1});  // CU_STREAM_LEGACY: what 0 means to kiln
  kiln_buffer* buffer = nullptr;
  uint64_t address = 0;
  ASSERT_EQ(kiln_buffer_create(borrowed, 256, "borrowed", &buffer, &address, &e), KILN_OK) << e.text();
  ASSERT_EQ(kiln_memset_async(borrowed, address, 0x5a, 256, &e), KILN_OK) << e.text();
  unsigned char host[256] = {};
  ASSERT_EQ(kiln_copy_to_host(borrowed, host, address, sizeof host, &e), KILN_OK) << e.text();
  EXPECT_EQ(host[0], 0x5a);
  EXPECT_EQ(host[255], 0x5a);
  kiln_stream_destroy(borrowed);  // kiln's part only; the buffer keeps its order on the stream
  kiln_buffer_destroy(buffer);
  ASSERT_EQ(kiln_stream_borrow(0, 0, &borrowed, &e), KILN_OK);  // the stream is still there
  ASSERT_EQ(kiln_stream_synchronize(borrowed, &e), KILN_OK) << e.text();
  kiln_stream_destroy(borrowed);
}

TEST(CAbiGpu, DeviceInfoAndParameters) {
  KILN_C_REQUIRE_GPU();
  kiln_device_info info{};
  info.size = sizeof info;
  Error e;
  ASSERT_EQ(kiln_device_get_info(0, &info, &e), KILN_OK) << e.text();
  EXPECT_GT(std::strlen(info.name), 0u);
  EXPECT_EQ(std::string(info.uuid).rfind("GPU-", 0), 0u);
  EXPECT_GT(info.memory_total, 0u);
  EXPECT_GT(info.multiprocessors, 0);
  uint64_t free = 0, total = 0;
  ASSERT_EQ(kiln_device_memory(0, &free, &total, &e), KILN_OK) << e.text();
  EXPECT_EQ(total, info.memory_total);
  EXPECT_GT(free, 0u);
  EXPECT_LE(free, total);
  EXPECT_EQ(kiln_device_memory(0, nullptr, &total, &e), KILN_ERROR_KILN);

  size_t sizes[8] = {};
  size_t count = 0;
  ASSERT_EQ(kiln_kernel_params(gpu().saxpy, sizes, 8, &count, &e), KILN_OK);
  ASSERT_EQ(count, 4u);
  EXPECT_EQ(sizes[0], sizeof(float));
  EXPECT_EQ(sizes[1], sizeof(void*));
  EXPECT_EQ(sizes[3], sizeof(unsigned));
  EXPECT_EQ(kiln_kernel_device(gpu().saxpy), 0);
}

TEST(CAbiGpu, SaxpyThroughPoolBuffersPinnedAndStagedCopies) {
  KILN_C_REQUIRE_GPU();
  Stream s;
  constexpr unsigned n = 1u << 20;
  Error e;
  kiln_buffer *x = nullptr, *y = nullptr;
  uint64_t dx = 0, dy = 0;
  ASSERT_EQ(kiln_buffer_create(s.handle, n * sizeof(float), "c-abi-x", &x, &dx, &e), KILN_OK) << e.text();
  ASSERT_EQ(kiln_buffer_create(s.handle, n * sizeof(float), "c-abi-y", &y, &dy, &e), KILN_OK) << e.text();
  EXPECT_EQ(kiln_buffer_device(x), 0);

  // x from pageable memory (staged), y from a pinned block (direct).
  std::vector<float> hx(n);
  for (unsigned i = 0; i < n; ++i) hx[i] = float(i % 1000);
  ASSERT_EQ(kiln_copy_to_device(s.handle, dx, hx.data(), n * sizeof(float), &e), KILN_OK) << e.text();
  kiln_pinned_pool* pool = nullptr;
  ASSERT_EQ(kiln_pinned_pool_create(0, KILN_HOST_PINNED, 0, &pool, &e), KILN_OK) << e.text();
  kiln_pinned* pinned = nullptr;
  void* data = nullptr;
  ASSERT_EQ(kiln_pinned_create(pool, n * sizeof(float), "c-abi-y-host", &pinned, &data, &e), KILN_OK);
  auto* hy = static_cast<float*>(data);
  for (unsigned i = 0; i < n; ++i) hy[i] = 1.0f;
  ASSERT_EQ(kiln_copy_to_device_async(s.handle, dy, hy, n * sizeof(float), &e), KILN_OK) << e.text();

  Arguments args;
  args.add(2.0f).add(dx).add(dy).add(n);
  const kiln_launch_config config = cover(n);
  ASSERT_EQ(kiln_launch(gpu().saxpy, s.handle, &config, args.bytes.data(), args.sizes.data(), args.sizes.size(), &e),
            KILN_OK)
      << e.text();
  std::vector<float> out(n);
  ASSERT_EQ(kiln_copy_to_host(s.handle, out.data(), dy, n * sizeof(float), &e), KILN_OK) << e.text();
  for (unsigned i = 0; i < n; i += 4099) ASSERT_EQ(out[i], 2.0f * float(i % 1000) + 1.0f) << i;

  // An asynchronous copy refuses pageable memory instead of silently serialising.
  Error pageable;
  EXPECT_EQ(kiln_copy_to_host_async(s.handle, out.data(), dy, 64, &pageable), KILN_ERROR_KILN);
  EXPECT_CONTAINS(pageable.text(), "is pageable");

  kiln_pool_stats stats{};
  stats.size = sizeof stats;
  ASSERT_EQ(kiln_device_pool_stats(0, &stats, &e), KILN_OK);
  EXPECT_GE(stats.in_use, 2u * n * sizeof(float));
  kiln_buffer_destroy(x);
  kiln_buffer_destroy(y);
  kiln_pinned_destroy(pinned);
  kiln_pinned_pool_destroy(pool);
}

TEST(CAbiGpu, BadArgumentsAreRefusedBeforeAnythingIsLaunched) {
  KILN_C_REQUIRE_GPU();
  Stream s;
  Error e;
  kiln_buffer* counter = nullptr;
  uint64_t address = 0;
  ASSERT_EQ(kiln_buffer_create(s.handle, sizeof(unsigned), nullptr, &counter, &address, &e), KILN_OK);
  ASSERT_EQ(kiln_memset_async(s.handle, address, 0, sizeof(unsigned), &e), KILN_OK);
  const kiln_launch_config one = cover(1, 1);

  Arguments none;
  Error count;
  EXPECT_EQ(kiln_launch(gpu().add_one, s.handle, &one, nullptr, nullptr, 0, &count), KILN_ERROR_KILN);
  EXPECT_EQ(count.code, KILN_ERRC_INVALID_ARGUMENT);
  EXPECT_CONTAINS(count.text(), "add_one");

  Arguments small;
  small.add(std::uint32_t{0});  // 4 bytes where the kernel takes an 8-byte pointer
  Error size;
  EXPECT_EQ(kiln_launch(gpu().add_one, s.handle, &one, small.bytes.data(), small.sizes.data(), 1, &size),
            KILN_ERROR_KILN);
  EXPECT_EQ(size.code, KILN_ERRC_INVALID_ARGUMENT);
  EXPECT_CONTAINS(size.text(), "8");

  Arguments good;
  good.add(address);
  ASSERT_EQ(kiln_launch(gpu().add_one, s.handle, &one, good.bytes.data(), good.sizes.data(), 1, &e), KILN_OK);
  unsigned launched = 0;
  ASSERT_EQ(kiln_copy_to_host(s.handle, &launched, address, sizeof launched, &e), KILN_OK);
  EXPECT_EQ(launched, 1u);  // only the good launch ran
  kiln_buffer_destroy(counter);
}

TEST(CAbiGpu, ALaunchConfigWithoutItsSizeIsRefusedAndClustersLaunch) {
  KILN_C_REQUIRE_GPU();
  Stream s;
  Error e;
  kiln_buffer* counter = nullptr;
  uint64_t address = 0;
  ASSERT_EQ(kiln_buffer_create(s.handle, sizeof(unsigned), nullptr, &counter, &address, &e), KILN_OK);
  ASSERT_EQ(kiln_memset_async(s.handle, address, 0, sizeof(unsigned), &e), KILN_OK);
  Arguments args;
  args.add(address);
  kiln_launch_config unsized = cover(1, 1);
  unsized.size = 0;
  Error refused;
  EXPECT_EQ(kiln_launch(gpu().add_one, s.handle, &unsized, args.bytes.data(), args.sizes.data(), 1, &refused),
            KILN_ERROR_KILN);
  EXPECT_CONTAINS(refused.text(), "set it to sizeof(kiln_launch_config)");
  kiln_device_info info{};
  info.size = sizeof info;
  ASSERT_EQ(kiln_device_get_info(0, &info, &e), KILN_OK);
  if (info.cc_major < 9) {
    kiln_buffer_destroy(counter);
    GTEST_SKIP() << "thread-block clusters need sm_90; device 0 is sm_" << info.cc_major << info.cc_minor;
  }
  kiln_launch_config clusters = cover(4 * 32, 32);  // 4 blocks of 32, in clusters of 2
  clusters.cluster[0] = 2;
  ASSERT_EQ(kiln_launch(gpu().add_one, s.handle, &clusters, args.bytes.data(), args.sizes.data(), 1, &e), KILN_OK)
      << e.text();
  unsigned value = 0;
  ASSERT_EQ(kiln_copy_to_host(s.handle, &value, address, sizeof value, &e), KILN_OK);
  EXPECT_EQ(value, 4u * 32u);  // every thread of every block ran, once
  kiln_buffer_destroy(counter);
}

TEST(CAbiGpu, AWaitPastItsDeadlineNamesTheWorkInFlight) {
  KILN_C_REQUIRE_GPU();
  Stream s;
  Error e;
  kiln_device_info info{};
  info.size = sizeof info;
  ASSERT_EQ(kiln_device_get_info(0, &info, &e), KILN_OK);
  Arguments args;
  args.add(static_cast<long long>(2'000'000'000));  // about a second at 2 GHz
  const kiln_launch_config one = cover(1, 1);
  ASSERT_EQ(kiln_launch(gpu().spin, s.handle, &one, args.bytes.data(), args.sizes.data(), 1, &e), KILN_OK);
  Error timeout;
  EXPECT_EQ(kiln_stream_wait(s.handle, 10'000'000, nullptr, &timeout), KILN_ERROR_KILN);
  EXPECT_EQ(timeout.code, KILN_ERRC_TIMEOUT);
  EXPECT_CONTAINS(timeout.text(), "device 0");

  kiln_cancel* cancel = nullptr;
  ASSERT_EQ(kiln_cancel_create(&cancel, &e), KILN_OK);
  std::thread canceller([cancel] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    kiln_cancel_request(cancel);
  });
  Error cancelled;
  EXPECT_EQ(kiln_stream_wait(s.handle, -1, cancel, &cancelled), KILN_ERROR_KILN);
  canceller.join();
  EXPECT_EQ(cancelled.code, KILN_ERRC_CANCELLED);
  kiln_cancel_destroy(cancel);
  // Without a deadline the wait sees the end.
  EXPECT_EQ(kiln_stream_wait(s.handle, -1, nullptr, &e), KILN_OK) << e.text();
}

TEST(CAbiGpu, EventsTimeWorkAndOrderStreams) {
  KILN_C_REQUIRE_GPU();
  Stream a, b;
  Error e;
  kiln_event *start = nullptr, *end = nullptr;
  ASSERT_EQ(kiln_event_create(0, KILN_EVENT_TIMING, &start, &e), KILN_OK) << e.text();
  ASSERT_EQ(kiln_event_create(0, KILN_EVENT_TIMING, &end, &e), KILN_OK);
  Error flags;
  kiln_event* bad = nullptr;
  EXPECT_EQ(kiln_event_create(0, 0x80, &bad, &flags), KILN_ERROR_KILN);
  Arguments args;
  args.add(static_cast<long long>(20'000'000));
  const kiln_launch_config one = cover(1, 1);
  ASSERT_EQ(kiln_event_record(start, a.handle, &e), KILN_OK);
  ASSERT_EQ(kiln_launch(gpu().spin, a.handle, &one, args.bytes.data(), args.sizes.data(), 1, &e), KILN_OK);
  ASSERT_EQ(kiln_event_record(end, a.handle, &e), KILN_OK);
  ASSERT_EQ(kiln_stream_wait_event(b.handle, end, &e), KILN_OK);
  ASSERT_EQ(kiln_stream_wait(b.handle, -1, nullptr, &e), KILN_OK);
  // b waited for a's event, so a's work is done.
  ASSERT_EQ(kiln_event_wait(end, 0, nullptr, &e), KILN_OK) << e.text();
  float ms = 0;
  ASSERT_EQ(kiln_event_elapsed_ms(start, end, &ms, &e), KILN_OK);
  EXPECT_GT(ms, 0.0f);
  kiln_event_destroy(start);
  kiln_event_destroy(end);
}

TEST(CAbiGpu, ManagedMemoryPrefetchedBothWays) {
  KILN_C_REQUIRE_GPU();
  Stream s;
  Error e;
  kiln_managed* managed = nullptr;
  uint64_t address = 0;
  ASSERT_EQ(kiln_managed_create(0, sizeof(unsigned), "c-abi-managed", &managed, &address, &e), KILN_OK) << e.text();
  *reinterpret_cast<unsigned*>(address) = 41;
  ASSERT_EQ(kiln_managed_prefetch(managed, 0, s.handle, &e), KILN_OK) << e.text();
  Arguments args;
  args.add(address);
  const kiln_launch_config one = cover(1, 1);
  ASSERT_EQ(kiln_launch(gpu().add_one, s.handle, &one, args.bytes.data(), args.sizes.data(), 1, &e), KILN_OK);
  ASSERT_EQ(kiln_managed_prefetch(managed, 1, s.handle, &e), KILN_OK);
  ASSERT_EQ(kiln_stream_synchronize(s.handle, &e), KILN_OK);
  EXPECT_EQ(*reinterpret_cast<unsigned*>(address), 42u);
  kiln_managed_destroy(managed);
}

TEST(CAbiGpu, ManyThreadsLaunchOnOneContextWithoutSetup) {
  KILN_C_REQUIRE_GPU();
  Stream shared;
  Error e;
  kiln_buffer* counter = nullptr;
  uint64_t address = 0;
  ASSERT_EQ(kiln_buffer_create(shared.handle, sizeof(unsigned), nullptr, &counter, &address, &e), KILN_OK);
  ASSERT_EQ(kiln_memset_async(shared.handle, address, 0, sizeof(unsigned), &e), KILN_OK);
  ASSERT_EQ(kiln_stream_synchronize(shared.handle, &e), KILN_OK);
  constexpr int kThreads = 16, kEach = 500;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      // Half the threads share a stream, half have their own: no thread made a context current.
      Stream own;
      kiln_stream* stream = t % 2 == 0 ? shared.handle : own.handle;
      Arguments args;
      args.add(address);
      const kiln_launch_config one = cover(1, 1);
      Error error;
      for (int i = 0; i < kEach; ++i)
        if (kiln_launch(gpu().add_one, stream, &one, args.bytes.data(), args.sizes.data(), 1, &error) != KILN_OK)
          ++failures;
      if (kiln_stream_synchronize(stream, &error) != KILN_OK) ++failures;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  unsigned total = 0;
  ASSERT_EQ(kiln_copy_to_host(shared.handle, &total, address, sizeof total, &e), KILN_OK);
  EXPECT_EQ(total, unsigned(kThreads * kEach));
  kiln_buffer_destroy(counter);
}

TEST(CAbiGpu, OwnersMayBeDestroyedInAnyOrder) {
  KILN_C_REQUIRE_GPU();
  Error e;
  kiln_program p;
  kiln_program_init(&p);
  p.source = kSource;
  kiln_target target{};
  ASSERT_EQ(kiln_target_for_device(0, &target, &e), KILN_OK);
  kiln_image* image = nullptr;
  ASSERT_EQ(kiln_compile(gpu().cache, &p, target, &image, nullptr, &e), KILN_OK);
  kiln_module* module = nullptr;
  ASSERT_EQ(kiln_module_load(image, 0, &module, &e), KILN_OK);
  kiln_kernel* kernel = nullptr;
  ASSERT_EQ(kiln_module_get_kernel(module, "add_one", &kernel, &e), KILN_OK);
  Error missing;
  kiln_kernel* none = nullptr;
  EXPECT_NE(kiln_module_get_kernel(module, "no_such_kernel", &none, &missing), KILN_OK);
  EXPECT_CONTAINS(missing.text(), "no_such_kernel");
  kiln_module_destroy(module);  // the kernel keeps the code loaded
  kiln_image_destroy(image);

  kiln_stream* stream = nullptr;
  ASSERT_EQ(kiln_stream_create(0, 0, &stream, &e), KILN_OK);
  kiln_buffer* counter = nullptr;
  uint64_t address = 0;
  ASSERT_EQ(kiln_buffer_create(stream, sizeof(unsigned), nullptr, &counter, &address, &e), KILN_OK);
  ASSERT_EQ(kiln_memset_async(stream, address, 0, sizeof(unsigned), &e), KILN_OK);
  Arguments args;
  args.add(address);
  const kiln_launch_config one = cover(1, 1);
  ASSERT_EQ(kiln_launch(kernel, stream, &one, args.bytes.data(), args.sizes.data(), 1, &e), KILN_OK) << e.text();
  unsigned value = 0;
  ASSERT_EQ(kiln_copy_to_host(stream, &value, address, sizeof value, &e), KILN_OK);
  EXPECT_EQ(value, 1u);
  kiln_stream_destroy(stream);   // the buffer keeps the stream it is freed on
  kiln_buffer_destroy(counter);  // freed in order on that stream
  kiln_kernel_destroy(kernel);
}

}  // namespace
