// Two GPUs: a stream of one device waits on an event recorded on the other, and peer copies.
// Skips on a machine with fewer than two GPUs (scripts/gpu-check accepts that skip only there).
#include <gtest/gtest.h>

#include <vector>

#include "core/kernels.hpp"
#include "kiln/core.hpp"
#include "support/gpu.hpp"
#include "support/nvrtc_compile.hpp"

namespace {

using namespace kiln::core;

TEST(MultiGpu, StreamWaitsOnAnEventOfAnotherDevice) {
  KILN_REQUIRE_GPU();
  if (Device::count() < 2) GTEST_SKIP() << "needs two GPUs";
  Device d0 = Device::get(0), d1 = Device::get(1);
  ContextRef c0 = d0.primary_context(), c1 = d1.primary_context();
  const std::string cubin0 = kiln::testing::compile_for_test(kiln::testing::kCoreKernels,
                                                             d0.compute_capability_major() * 10 + d0.compute_capability_minor());
  const std::string cubin1 = kiln::testing::compile_for_test(kiln::testing::kCoreKernels,
                                                             d1.compute_capability_major() * 10 + d1.compute_capability_minor());
  Module m0 = Module::load(c0, cubin0), m1 = Module::load(c1, cubin1);
  Stream s0 = Stream::create(c0), s1 = Stream::create(c1);
  Event done = Event::create(c0);
  // Host memory both devices can reach: portable and mapped.
  PinnedBuffer cells = PinnedBuffer::allocate(c0, 2 * sizeof(int), {.portable = true, .mapped = true});
  auto host = cells.as<int>();
  for (int trial = 1; trial <= 50; ++trial) {
    launch(s0, m0.kernel("spin_then_set"), LaunchConfig{}, cells.device_pointer(), trial, 50'000ull);
    done.record(s0);
    s1.wait(done);  // device 1 waits for device 0's event
    launch(s1, m1.kernel("copy_value"), LaunchConfig{}, cells.device_pointer(), cells.device_pointer() + sizeof(int));
    s1.synchronize();
    ASSERT_EQ(host[1], trial);
  }
}

TEST(MultiGpu, PeerCopyBetweenDevices) {
  KILN_REQUIRE_GPU();
  if (Device::count() < 2) GTEST_SKIP() << "needs two GPUs";
  Device d0 = Device::get(0), d1 = Device::get(1);
  const std::size_t bytes = 64u << 20;
  DeviceBuffer a = DeviceBuffer::allocate(d0.primary_context(), bytes);
  DeviceBuffer b = DeviceBuffer::allocate(d1.primary_context(), bytes);
  std::vector<unsigned> src(bytes / 4), dst(bytes / 4);
  for (std::size_t i = 0; i < src.size(); ++i) src[i] = static_cast<unsigned>(i * 2654435761u);
  copy(a.data(), src.data(), bytes, d0.primary_context());
  copy(b.data(), a.data(), bytes, d1.primary_context());  // unified addressing: a peer copy
  copy(dst.data(), b.data(), bytes, d1.primary_context());
  EXPECT_EQ(src, dst);
}

}  // namespace
