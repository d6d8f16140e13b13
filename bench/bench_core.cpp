// Core layer against the raw driver API, in the same process on the same GPU. "raw" calls the
// driver's own entry points (the pointers cuGetProcAddress returns, which kiln also uses), so the
// ratio is exactly what kiln's wrapper adds. Each pair is interleaved and repeated; medians count.
// Run: bench_core [--quick]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kiln/core.hpp"
#include "timing.hpp"
#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"

using namespace kiln::core;
using kiln::bench::clk;
using kiln::bench::median;
using kiln::bench::us_since;
using kiln::driver::check;

namespace {

const char* kSource = R"(
extern "C" __global__ void empty() {}
extern "C" __global__ void saxpy(float a, const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
extern "C" __global__ void add_scalar(float* y, float v) { y[threadIdx.x] += v; }
)";

struct Row {
  std::string what, unit;
  double raw, kiln;
  double limit;  // the issue's bound on kiln/raw (0: none)
};
std::vector<Row> rows;

void report(const std::string& what, const std::string& unit, double raw, double kiln_v, double limit) {
  rows.push_back({what, unit, raw, kiln_v, limit});
  std::printf("%-52s raw %10.3f %-9s kiln %10.3f  ratio %.3f\n", what.c_str(), raw, unit.c_str(), kiln_v, kiln_v / raw);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const auto& cu = kiln::driver::cuda();
  auto t_init = clk::now();
  Device dev = Device::get(0);
  ContextRef ctx = dev.primary_context();
  ctx.make_current();
  std::printf("device: %s, driver init + primary context %.1f ms\n", dev.name().c_str(), us_since(t_init) / 1000);
  const int arch = dev.compute_capability_major() * 10 + dev.compute_capability_minor();
  Module module = Module::load(ctx, kiln::bench::cubin_for(kSource, arch));
  Kernel empty = module.kernel("empty"), saxpy = module.kernel("saxpy"), add = module.kernel("add_scalar");
  CUfunction raw_empty = empty.handle(), raw_saxpy = saxpy.handle();
  Stream stream = Stream::create(ctx);
  CUstream s = stream.handle();

  // 1. 100k asynchronous launches of an empty kernel.
  {
    const int n = quick ? 20000 : 100000, reps = quick ? 3 : 7;
    std::vector<double> raw, kl;
    for (int i = 0; i < 2000; ++i) launch(stream, empty, LaunchConfig::of(1, 1));
    stream.synchronize();
    for (int r = 0; r < reps; ++r) {
      auto t = clk::now();
      for (int i = 0; i < n; ++i) check(cu.cuLaunchKernel(raw_empty, 1, 1, 1, 1, 1, 1, 0, s, nullptr, nullptr), "cuLaunchKernel");
      check(cu.cuStreamSynchronize(s), "sync");
      raw.push_back(us_since(t) / n);
      t = clk::now();
      for (int i = 0; i < n; ++i) launch(stream, empty, LaunchConfig::of(1, 1));
      stream.synchronize();
      kl.push_back(us_since(t) / n);
    }
    report("empty kernel, async launch (per launch)", "us", median(raw), median(kl), 1.05);
  }

  // 2. launch + synchronize round trip; 3. saxpy on 1M floats.
  {
    const int n = 1 << 20, reps = quick ? 500 : 3000;
    DeviceBuffer x = DeviceBuffer::allocate(ctx, n * sizeof(float)), y = DeviceBuffer::allocate(ctx, n * sizeof(float));
    memset32(x.data(), 0x3f800000u, n, ctx);
    memset32(y.data(), 0, n, ctx);
    float a = 2.f;
    int nn = n;
    CUdeviceptr xp = x.data(), yp = y.data();
    void* args[] = {&a, &xp, &yp, &nn};
    std::vector<double> raw, kl, raw_s, kl_s;
    for (int r = 0; r < reps; ++r) {
      auto t = clk::now();
      check(cu.cuLaunchKernel(raw_empty, 1, 1, 1, 1, 1, 1, 0, s, nullptr, nullptr), "cuLaunchKernel");
      check(cu.cuStreamSynchronize(s), "sync");
      raw.push_back(us_since(t));
      t = clk::now();
      launch(stream, empty, LaunchConfig::of(1, 1));
      stream.synchronize();
      kl.push_back(us_since(t));
      t = clk::now();
      check(cu.cuLaunchKernel(raw_saxpy, (n + 255) / 256, 1, 1, 256, 1, 1, 0, s, args, nullptr), "cuLaunchKernel");
      check(cu.cuStreamSynchronize(s), "sync");
      raw_s.push_back(us_since(t));
      t = clk::now();
      launch(stream, saxpy, LaunchConfig::cover(n, 256), a, x, y, n);
      stream.synchronize();
      kl_s.push_back(us_since(t));
    }
    report("empty kernel, launch + synchronize", "us", median(raw), median(kl), 1.05);
    report("saxpy 1M floats, launch + synchronize", "us", median(raw_s), median(kl_s), 1.05);
  }

  // 4. 8 threads, each on its own stream, launching at once: aggregate launches per second.
  {
    const int threads = 8, per_thread = quick ? 20000 : 100000;
    auto run = [&](int mode) {  // 0 raw, 1 kiln, 2 raw behind one global mutex
      std::mutex global;
      std::atomic<int> ready{0};
      std::atomic<bool> go{false};
      std::vector<std::thread> pool;
      std::vector<Stream> streams;
      for (int t = 0; t < threads; ++t) streams.push_back(Stream::create(ctx));
      for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
          ctx.make_current();
          StreamRef st = streams[t];
          ++ready;
          while (!go) std::this_thread::yield();
          for (int i = 0; i < per_thread; ++i) {
            if (mode == 1) {
              launch(st, empty, LaunchConfig::of(1, 1));
            } else if (mode == 0) {
              cu.cuLaunchKernel(raw_empty, 1, 1, 1, 1, 1, 1, 0, st.handle(), nullptr, nullptr);
            } else {
              std::lock_guard lock(global);
              cu.cuLaunchKernel(raw_empty, 1, 1, 1, 1, 1, 1, 0, st.handle(), nullptr, nullptr);
            }
          }
          st.synchronize();
        });
      while (ready < threads) std::this_thread::yield();
      auto t = clk::now();
      go = true;
      for (auto& th : pool) th.join();
      return threads * per_thread / (us_since(t) / 1e6);
    };
    std::vector<double> raw, kl, mutexed;
    for (int r = 0; r < (quick ? 1 : 3); ++r) {
      raw.push_back(run(0));
      kl.push_back(run(1));
      mutexed.push_back(run(2));
    }
    report("8 threads x own stream, launches per second", "launch/s", median(raw), median(kl), 0);
    std::printf("%-52s %10.0f launch/s (%.2fx raw)\n", "  same, raw behind one global mutex", median(mutexed),
                median(mutexed) / median(raw));
  }

  // 5. 100 small kernels: a graph replay versus 100 launches.
  {
    DeviceBuffer y = DeviceBuffer::allocate(ctx, 256 * sizeof(float));
    memset32(y.data(), 0, 256, ctx);
    auto work = [&](const StreamRef& st) {
      for (int k = 0; k < 100; ++k) launch(st, add, LaunchConfig::of(1, 256), y, 1.f);
    };
    Graph g = Graph::capture(stream, work);
    GraphExec exec = GraphExec::instantiate(g, ctx);
    std::vector<double> eager, graph;
    for (int r = 0; r < (quick ? 50 : 300); ++r) {
      auto t = clk::now();
      work(stream);
      stream.synchronize();
      eager.push_back(us_since(t));
      t = clk::now();
      exec.launch(stream);
      stream.synchronize();
      graph.push_back(us_since(t));
    }
    std::printf("%-52s 100 launches %8.1f us, graph replay %8.1f us (%.2fx)\n", "100 small kernels", median(eager),
                median(graph), median(graph) / median(eager));
  }

  // 6. Deadline wait: a 1 ms kernel, then wait. Driver's blocking synchronize vs kiln's wait_for.
  {
    const int reps = quick ? 30 : 200;
    const char* spin_src = R"(extern "C" __global__ void spin(unsigned long long ns) {
      unsigned long long s, t; asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(s));
      do { asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); } while (t - s < ns); })";
    Module spin_module = Module::load(ctx, kiln::bench::cubin_for(spin_src, arch));
    Kernel spin = spin_module.kernel("spin");
    std::vector<double> sync_t, wait_t;
    for (int r = 0; r < reps; ++r) {
      auto t = clk::now();
      launch(stream, spin, LaunchConfig::of(1, 1), 1'000'000ull);
      stream.synchronize();
      sync_t.push_back(us_since(t));
      t = clk::now();
      launch(stream, spin, LaunchConfig::of(1, 1), 1'000'000ull);
      stream.wait_for(std::chrono::seconds(1));
      wait_t.push_back(us_since(t));
    }
    report("1 ms kernel + wait (cuStreamSynchronize vs wait_for)", "us", median(sync_t), median(wait_t), 0);
    std::printf("  wait_for adds %.1f us at the median\n", median(wait_t) - median(sync_t));
  }

  std::printf("\n| measurement | raw | kiln | kiln/raw | bound |\n| --- | --- | --- | --- | --- |\n");
  bool ok = true;
  for (const Row& r : rows) {
    const double ratio = r.kiln / r.raw;
    const bool throughput = r.unit == "launch/s";
    bool pass = r.limit == 0 || (throughput ? ratio >= r.limit : ratio <= r.limit);
    if (throughput) pass = ratio >= 0.95;
    ok = ok && pass;
    std::printf("| %s | %.3f %s | %.3f %s | %.3f | %s |\n", r.what.c_str(), r.raw, r.unit.c_str(), r.kiln,
                r.unit.c_str(), ratio,
                throughput ? (pass ? ">= 0.95: met" : ">= 0.95: MISSED")
                           : (r.limit == 0 ? "-" : (pass ? "<= 1.05: met" : "<= 1.05: MISSED")));
  }
  return ok ? 0 : 1;
}
