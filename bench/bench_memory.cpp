// Memory layer against the raw driver in the same process on the same GPU: pool allocation,
// pinned pool, pageable copies through staging, and the cost of allocation tracking.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "kiln/core.hpp"
#include "timing.hpp"
#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/memory/pageable_copy.hpp"
#include "kiln/memory/pinned_pool.hpp"
#include "kiln/memory/pool_resource.hpp"

using namespace kiln;
using kiln::bench::clk;
using kiln::bench::median;
using kiln::bench::us_since;
using driver::check;

namespace {

// Median over `reps` of the mean time per iteration of `body` run `n` times.
template <typename F>
double per_op_us(int reps, int n, F&& body) {
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    auto start = clk::now();
    for (int i = 0; i < n; ++i) body();
    t.push_back(us_since(start) / n);
  }
  return median(t);
}

void row(const char* what, double raw, double kiln_v, const char* unit, const char* bound) {
  std::printf("| %s | %.3f %s | %.3f %s | %.3f | %s |\n", what, raw, unit, kiln_v, unit, kiln_v / raw, bound);
  std::fflush(stdout);
}

}  // namespace

int main() {
  const auto& cu = driver::cuda();
  core::Device dev = core::Device::get(0);
  core::ContextRef ctx = dev.primary_context();
  ctx.make_current();
  core::Stream stream = core::Stream::create(ctx);
  CUstream s = stream.handle();
  std::printf("device: %s\n\n| measurement | raw | kiln | kiln/raw | bound |\n| --- | --- | --- | --- | --- |\n",
              dev.name().c_str());

  // Device pool, 1 MiB allocate + free, stream-ordered.
  {
    const std::size_t mib = 1 << 20;
    memory::PoolResource untracked(dev, {.track = false}), tracked(dev, {.track = true});
    auto raw_body = [&] {
      CUdeviceptr p;
      check(cu.cuMemAllocAsync(&p, mib, s), "cuMemAllocAsync");
      check(cu.cuMemFreeAsync(p, s), "cuMemFreeAsync");
    };
    auto pool_body = [&](memory::PoolResource& pool) {
      return [&] { pool.deallocate(pool.allocate(mib, stream), mib, stream); };
    };
    for (int i = 0; i < 10000; ++i) raw_body(), pool_body(untracked)(), pool_body(tracked)();
    stream.synchronize();
    std::vector<double> raw, off, on;
    for (int r = 0; r < 7; ++r) {
      raw.push_back(per_op_us(1, 20000, raw_body));
      off.push_back(per_op_us(1, 20000, pool_body(untracked)));
      on.push_back(per_op_us(1, 20000, pool_body(tracked)));
    }
    stream.synchronize();
    row("device pool alloc+free 1 MiB (tracking off) vs cuMemAllocAsync+cuMemFreeAsync", median(raw), median(off), "us", "<= 1.0");
    row("device pool alloc+free 1 MiB (tracking on)", median(raw), median(on), "us", "-");
    // The same driver calls on kiln's own pool, without kiln: what the wrapper itself adds.
    CUmemoryPool own = untracked.handle();
    const double raw_own = per_op_us(7, 20000, [&] {
      CUdeviceptr p;
      check(cu.cuMemAllocFromPoolAsync(&p, mib, own, s), "cuMemAllocFromPoolAsync");
      check(cu.cuMemFreeAsync(p, s), "cuMemFreeAsync");
    });
    stream.synchronize();
    row("raw cuMemAllocFromPoolAsync on kiln's pool vs kiln (tracking off)", raw_own, median(off), "us", "-");
    std::printf("| tracking cost per allocation + free | | %.3f us | | |\n", median(on) - median(off));
  }

  // Pinned pool, 1 MiB allocate + free.
  {
    memory::PinnedPool pool(memory::HostAllocator::pinned(ctx));
    memory::PinnedPool tracked_pool(memory::HostAllocator::pinned(ctx), {.track_hand_outs = true});
    { auto warm = pool.allocate(1 << 20); auto warm2 = tracked_pool.allocate(1 << 20); }
    const double raw = per_op_us(3, 20, [&] {
      void* p;
      check(cu.cuMemHostAlloc(&p, 1 << 20, CU_MEMHOSTALLOC_PORTABLE), "cuMemHostAlloc");
      check(cu.cuMemFreeHost(p), "cuMemFreeHost");
    });
    const double off = per_op_us(7, 200000, [&] { auto b = pool.allocate(1 << 20); });
    const double on = per_op_us(7, 200000, [&] { auto b = tracked_pool.allocate(1 << 20); });
    row("pinned pool alloc+free 1 MiB (default: blocks tracked when obtained) vs cuMemHostAlloc+cuMemFreeHost", raw, off, "us", "<= 0.2 us");
    row("pinned pool alloc+free 1 MiB (every hand-out tracked)", raw, on, "us", "-");
  }

  // Pageable copies, 256 MiB and 4 KiB.
  {
    const std::size_t big = 256u << 20;
    std::vector<unsigned char> host(big), back(big);
    for (std::size_t i = 0; i < big; ++i) host[i] = static_cast<unsigned char>(i % 251);
    core::DeviceBuffer d = core::DeviceBuffer::allocate(ctx, big);
    memory::PageableCopier copier(ctx);
    auto gbps = [&](double us) { return big / us / 1e3; };
    std::vector<double> raw_h2d, raw_d2h, k_h2d, k_d2h;
    for (int r = 0; r < 5; ++r) {
      auto t = clk::now();
      check(cu.cuMemcpyHtoD(d.data(), host.data(), big), "cuMemcpyHtoD");
      raw_h2d.push_back(gbps(us_since(t)));
      t = clk::now();
      copier.to_device(d.data(), host.data(), big, stream);
      stream.synchronize();
      k_h2d.push_back(gbps(us_since(t)));
      t = clk::now();
      check(cu.cuMemcpyDtoH(back.data(), d.data(), big), "cuMemcpyDtoH");
      raw_d2h.push_back(gbps(us_since(t)));
      t = clk::now();
      copier.to_host(back.data(), d.data(), big, stream);
      k_d2h.push_back(gbps(us_since(t)));
    }
    row("256 MiB pageable -> device, kiln vs driver (GB/s)", median(raw_h2d), median(k_h2d), "GB/s", "-");
    row("256 MiB device -> pageable, kiln vs driver (GB/s)", median(raw_d2h), median(k_d2h), "GB/s", "-");
    memory::PinnedPool pinned(memory::HostAllocator::pinned(ctx));
    auto pb = pinned.allocate(big);
    std::vector<double> pin_h2d, pin_d2h;
    for (int r = 0; r < 5; ++r) {
      auto t = clk::now();
      check(cu.cuMemcpyHtoD(d.data(), pb.data(), big), "cuMemcpyHtoD");
      pin_h2d.push_back(gbps(us_since(t)));
      t = clk::now();
      check(cu.cuMemcpyDtoH(pb.data(), d.data(), big), "cuMemcpyDtoH");
      pin_d2h.push_back(gbps(us_since(t)));
    }
    row("256 MiB pageable -> device, kiln vs pinned (GB/s)", median(pin_h2d), median(k_h2d), "GB/s", ">= 0.9x pinned");
    row("256 MiB device -> pageable, kiln vs pinned (GB/s)", median(pin_d2h), median(k_d2h), "GB/s", ">= 0.9x pinned");

    // Staging configurations, to choose the defaults on this machine (ratios to pinned, same run).
    auto measure = [&](const memory::StagingOptions& o, const char* label) {
      memory::PageableCopier c(ctx, o);
      std::vector<double> h, d2;
      for (int r = 0; r < 3; ++r) {
        auto t0 = clk::now();
        c.to_device(d.data(), host.data(), big, stream);
        stream.synchronize();
        h.push_back(gbps(us_since(t0)));
        t0 = clk::now();
        c.to_host(back.data(), d.data(), big, stream);
        d2.push_back(gbps(us_since(t0)));
      }
      std::printf("| %zu | %u | %s | %s | %.1f | %.1f | %.3f | %.3f |\n", o.chunk_bytes >> 10, o.workers,
                  o.ramp ? "yes" : "no", label, median(h), median(d2), median(h) / median(pin_h2d),
                  median(d2) / median(pin_d2h));
      std::fflush(stdout);
    };
    std::printf("\n| chunk KiB | workers (0: default) | ramp | stores H2D/D2H | H2D GB/s | D2H GB/s | H2D/pinned | D2H/pinned |\n"
                "| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    const memory::StagingOptions defaults;
    {  // the defaults before issue #11, for the before/after in one run
      memory::StagingOptions before = defaults;
      before.chunk_bytes = 2u << 20;
      before.workers = std::min(16u, std::max(1u, std::thread::hardware_concurrency()));
      before.ramp = false;
      before.to_host_stores = memory::HostStores::cached;
      measure(before, "cached/cached (before)");
    }
    const char* names[] = {"cached", "streaming"};
    for (auto into : {memory::HostStores::cached, memory::HostStores::streaming})
      for (auto out : {memory::HostStores::cached, memory::HostStores::streaming}) {
        memory::StagingOptions o = defaults;
        o.to_device_stores = into;
        o.to_host_stores = out;
        const std::string label = std::string(names[int(into)]) + "/" + names[int(out)];
        measure(o, label.c_str());
      }
    for (std::size_t chunk : {1u << 20, 2u << 20, 4u << 20, 8u << 20})
      for (unsigned workers : {4u, 8u, 16u})
        for (bool ramp : {false, true}) {
          memory::StagingOptions o = defaults;
          o.chunk_bytes = chunk;
          o.workers = workers;
          o.ramp = ramp;
          measure(o, "cached/streaming");
        }
    std::printf("\n");
    if (std::memcmp(host.data(), back.data(), big) != 0) std::printf("ERROR: the round trip changed the data\n");

    const std::size_t small = 4096;
    const double raw4 = per_op_us(7, 5000, [&] {
      check(cu.cuMemcpyHtoDAsync(d.data(), host.data(), small, s), "cuMemcpyHtoDAsync");
      check(cu.cuStreamSynchronize(s), "sync");
    });
    const double k4 = per_op_us(7, 5000, [&] {
      copier.to_device(d.data(), host.data(), small, stream);
      stream.synchronize();
    });
    row("4 KiB pageable -> device + sync", raw4, k4, "us", "no slower than raw");
    const double raw4b = per_op_us(7, 5000, [&] { check(cu.cuMemcpyDtoH(back.data(), d.data(), small), "cuMemcpyDtoH"); });
    const double k4b = per_op_us(7, 5000, [&] { copier.to_host(back.data(), d.data(), small, stream); });
    row("4 KiB device -> pageable", raw4b, k4b, "us", "no slower than raw");
  }
  return 0;
}
