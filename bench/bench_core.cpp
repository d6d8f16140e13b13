// Core layer against the raw driver API, in the same process on the same GPU. "raw" calls the
// driver's own entry points (the pointers cuGetProcAddress returns, which kiln also uses), so the
// ratio is exactly what kiln's wrapper adds. Each pair is interleaved and repeated; medians count.
// Run: bench_core [--quick]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <functional>
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

  // 6. Waiting for the end of GPU work, kernels of 10 us to 1 s: the driver's own synchronize
  // against kiln's wait_for and the other ways a deadline wait could be built (issue #11: each
  // measured, the best kept). CPU: process CPU time per wait (driver threads included).
  {
    const char* spin_src = R"(extern "C" __global__ void spin(unsigned long long ns) {
      unsigned long long s, t; asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(s));
      do { asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); } while (t - s < ns); })";
    Module spin_module = Module::load(ctx, kiln::bench::cubin_for(spin_src, arch));
    Kernel spin = spin_module.kernel("spin");
    CUevent blocking = nullptr;
    check(cu.cuEventCreate(&blocking, CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING), "cuEventCreate");

    // The wait before this issue: yield 50 us, then sleep a sixteenth of the time waited (20 us-1 ms).
    auto old_poll = [&] {
      const auto t0 = clk::now();
      while (cu.cuStreamQuery(s) == CUDA_ERROR_NOT_READY) {
        const auto waited = clk::now() - t0;
        if (waited < std::chrono::microseconds(50)) { std::this_thread::yield(); continue; }
        std::this_thread::sleep_for(std::clamp<clk::duration>(waited / 16, std::chrono::microseconds(20),
                                                              std::chrono::milliseconds(1)));
      }
    };
    // A blocking-sync event waited on by a helper thread, which wakes the waiter (with a deadline).
    std::mutex m;
    std::condition_variable cv;
    bool signalled = false, have_work = false, quit = false;
    std::thread helper([&] {
      ctx.make_current();
      std::unique_lock lock(m);
      for (;;) {
        cv.wait(lock, [&] { return have_work || quit; });
        if (quit) return;
        have_work = false;
        lock.unlock();
        cu.cuEventSynchronize(blocking);
        lock.lock();
        signalled = true;
        cv.notify_all();
      }
    });
    auto blocking_event = [&] {
      check(cu.cuEventRecord(blocking, s), "cuEventRecord");
      std::unique_lock lock(m);
      signalled = false;
      have_work = true;
      cv.notify_all();
      cv.wait_until(lock, clk::now() + std::chrono::seconds(5), [&] { return signalled; });
    };
    // A host function after the work, waking the waiter through a futex (std::atomic::wait).
    struct Flag { std::atomic<int> done{0}; } flag;
    auto host_fn = [&] {
      flag.done.store(0);
      check(cu.cuLaunchHostFunc(s, [](void* f) {
        auto* fl = static_cast<Flag*>(f);
        fl->done.store(1);
        fl->done.notify_one();
      }, &flag), "cuLaunchHostFunc");
      flag.done.wait(0);
    };
    struct Way { const char* name; std::function<void()> wait; };
    std::vector<Way> ways = {
        {"cuStreamSynchronize", [&] { check(cu.cuStreamSynchronize(s), "sync"); }},
        {"kiln wait_for", [&] { stream.wait_for(std::chrono::seconds(5)); }},
        {"old poll (yield, sleep 1/16)", old_poll},
        {"blocking-sync event + helper", blocking_event},
        {"host function + futex", host_fn},
    };
    const std::vector<std::pair<unsigned long long, int>> durations = {
        {10'000, 200}, {100'000, 200}, {1'000'000, 100}, {10'000'000, 20}, {100'000'000, 6}, {1'000'000'000, 2}};
    std::printf("\nwait for a kernel of N us (median us per launch + wait; ratio to cuStreamSynchronize; CPU us per wait)\n");
    std::printf("%-10s", "kernel");
    for (const Way& w : ways) std::printf(" | %-30s", w.name);
    std::printf("\n");
    for (auto [ns, reps] : durations) {
      if (quick) reps = std::max(2, reps / 5);
      std::vector<std::vector<double>> t(ways.size()), cpu(ways.size());
      for (int r = 0; r < reps; ++r)
        for (std::size_t w = 0; w < ways.size(); ++w) {  // interleaved: drift hits every way alike
          const std::clock_t c0 = std::clock();
          const auto t0 = clk::now();
          launch(stream, spin, LaunchConfig::of(1, 1), ns);
          ways[w].wait();
          t[w].push_back(us_since(t0));
          cpu[w].push_back(double(std::clock() - c0) * 1e6 / CLOCKS_PER_SEC);
          stream.synchronize();
        }
      std::printf("%-10.0f", ns / 1000.0);
      const double base = median(t[0]);
      for (std::size_t w = 0; w < ways.size(); ++w)
        std::printf(" | %10.1f %6.4fx cpu %9.0f", median(t[w]), median(t[w]) / base, median(cpu[w]));
      std::printf("\n");
      if (ns == 1'000'000) report("1 ms kernel + wait (cuStreamSynchronize vs wait_for)", "us", base, median(t[1]), 1.02);
      else report(std::to_string(ns / 1000) + " us kernel + wait (sync vs wait_for)", "us", base, median(t[1]), 1.02);
      std::fflush(stdout);
    }
    {
      std::lock_guard lock(m);
      quit = true;
    }
    cv.notify_all();
    helper.join();
    cu.cuEventDestroy(blocking);
  }

  std::printf("\n| measurement | raw | kiln | kiln/raw | bound |\n| --- | --- | --- | --- | --- |\n");
  bool ok = true;
  for (const Row& r : rows) {
    const double ratio = r.kiln / r.raw;
    const bool throughput = r.unit == "launch/s";
    bool pass = r.limit == 0 || (throughput ? ratio >= r.limit : ratio <= r.limit);
    if (throughput) pass = ratio >= 0.95;
    ok = ok && pass;
    char bound[48] = "-";
    if (throughput) std::snprintf(bound, sizeof bound, ">= 0.95: %s", pass ? "met" : "MISSED");
    else if (r.limit != 0) std::snprintf(bound, sizeof bound, "<= %.2f: %s", r.limit, pass ? "met" : "MISSED");
    std::printf("| %s | %.3f %s | %.3f %s | %.3f | %s |\n", r.what.c_str(), r.raw, r.unit.c_str(), r.kiln,
                r.unit.c_str(), ratio, bound);
  }
  return ok ? 0 : 1;
}
