// libkiln_go_peers.so: see kiln_go_peers.h. Links the C++ kiln statically and exports only the
// kiln_peers_* functions, so its kiln stays private beside libkiln.so's own copy in the Go process.
#include "kiln_go_peers.h"

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kiln/core.hpp"
#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "timing.hpp"

#define KILN_PEERS_API extern "C" __attribute__((visibility("default")))

namespace {

using namespace kiln::core;
using kiln::bench::clk;

thread_local std::string last_error;

// The empty kernel of one device, compiled and loaded once.
struct Peer {
  ContextRef context;
  Module module;
  Kernel empty;
};

Peer& peer(int device) {
  static std::mutex mutex;
  static std::map<int, std::unique_ptr<Peer>> peers;
  std::lock_guard lock(mutex);
  auto& p = peers[device];
  if (!p) {
    Device dev = Device::get(device);
    ContextRef ctx = dev.primary_context();
    const int arch = dev.compute_capability_major() * 10 + dev.compute_capability_minor();
    Module module = Module::load(ctx, kiln::bench::cubin_for("extern \"C\" __global__ void empty() {}", arch));
    Kernel empty = module.kernel("empty");
    p = std::make_unique<Peer>(Peer{ctx, std::move(module), std::move(empty)});
  }
  return *p;
}

double seconds_since(clk::time_point t) { return std::chrono::duration<double>(clk::now() - t).count(); }

template <typename Body>
int guarded(Body&& body) noexcept {
  try {
    body();
    return 0;
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown exception";
  }
  return -1;
}

}  // namespace

KILN_PEERS_API int kiln_peers_launch_loop_raw(int device, long n, double* seconds) {
  return guarded([&] {
    Peer& p = peer(device);
    p.context.make_current();
    Stream stream = Stream::create(p.context);
    const auto& cu = kiln::driver::cuda();
    CUfunction f = p.empty.handle();
    CUstream s = stream.handle();
    const auto t = clk::now();
    for (long i = 0; i < n; ++i)
      kiln::driver::check(cu.cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, s, nullptr, nullptr), "cuLaunchKernel");
    stream.synchronize();
    *seconds = seconds_since(t);
  });
}

KILN_PEERS_API int kiln_peers_launch_loop_core(int device, long n, double* seconds) {
  return guarded([&] {
    Peer& p = peer(device);
    Stream stream = Stream::create(p.context);
    const auto t = clk::now();
    for (long i = 0; i < n; ++i) launch(stream, p.empty, LaunchConfig::of(1, 1));
    stream.synchronize();
    *seconds = seconds_since(t);
  });
}

KILN_PEERS_API int kiln_peers_launch_threads_core(int device, int threads, long n_each, double* seconds) {
  return guarded([&] {
    Peer& p = peer(device);
    std::vector<Stream> streams;
    for (int i = 0; i < threads; ++i) streams.push_back(Stream::create(p.context));
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i)
      pool.emplace_back([&, i] {
        ++ready;
        while (!go) std::this_thread::yield();
        for (long k = 0; k < n_each; ++k) launch(streams[static_cast<std::size_t>(i)], p.empty, LaunchConfig::of(1, 1));
        streams[static_cast<std::size_t>(i)].synchronize();
      });
    while (ready < threads) std::this_thread::yield();
    const auto t = clk::now();
    go = true;
    for (auto& th : pool) th.join();
    *seconds = seconds_since(t);
  });
}

KILN_PEERS_API const char* kiln_peers_last_error(void) { return last_error.c_str(); }
