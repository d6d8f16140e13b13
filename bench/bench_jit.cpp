// The JIT layer against raw NVRTC in the same process: cold compiles, cache hits, and a CUB kernel
// with NVRTC's automatic precompiled headers. Every compile uses a source body not seen before, so
// nothing but the layer under test can help.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "kiln/driver/check.hpp"
#include "kiln/driver/nvrtc_api.hpp"
#include "kiln/jit/kernel_cache.hpp"

namespace {

using namespace kiln::jit;
namespace fs = std::filesystem;

constexpr const char* kSaxpy = R"(
extern "C" __global__ void saxpy(float a, const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
)";

constexpr const char* kCubReduce = R"(
#include <cub/block/block_reduce.cuh>
extern "C" __global__ void block_sum(const int* in, int* out) {
  using Reduce = cub::BlockReduce<int, 128>;
  __shared__ typename Reduce::TempStorage storage;
  int total = Reduce(storage).Sum(in[threadIdx.x]);
  if (threadIdx.x == 0) *out = total + )";

std::atomic<int> g_unique{0};

std::string unique_saxpy() { return std::string(kSaxpy) + "// " + std::to_string(g_unique++) + "\n"; }
std::string unique_cub() { return std::string(kCubReduce) + std::to_string(g_unique++) + "; }\n"; }

fs::path bench_dir(const char* what) {
  fs::path d = fs::temp_directory_path() / ("kiln-bench-jit-" + std::to_string(::getpid()) + "-" + what);
  fs::remove_all(d);
  return d;
}

// NVRTC directly, with the options kiln would pass (architecture and the toolkit's folders).
void raw_nvrtc_compile(const std::string& source, const std::vector<std::string>& extra = {}) {
  const auto& api = kiln::driver::nvrtc();
  std::vector<std::string> options{"--gpu-architecture=sm_90"};
  for (const auto& d : toolkit_include_dirs()) options.push_back("-I" + d);
  options.insert(options.end(), extra.begin(), extra.end());
  std::vector<const char*> argv;
  for (const auto& o : options) argv.push_back(o.c_str());
  nvrtcProgram p;
  kiln::driver::check(api.nvrtcCreateProgram(&p, source.c_str(), "kernel.cu", 0, nullptr, nullptr), "create");
  kiln::driver::check(api.nvrtcCompileProgram(p, int(argv.size()), argv.data()), "compile");
  size_t size = 0;
  api.nvrtcGetCUBINSize(p, &size);
  std::string cubin(size, '\0');
  api.nvrtcGetCUBIN(p, cubin.data());
  benchmark::DoNotOptimize(cubin.data());
  api.nvrtcDestroyProgram(&p);
}

void BM_ColdCompile_RawNvrtc(benchmark::State& state) {
  for (auto _ : state) raw_nvrtc_compile(unique_saxpy());
}
BENCHMARK(BM_ColdCompile_RawNvrtc)->Unit(benchmark::kMillisecond)->MinTime(2.0);

// Miss in both tiers, NVRTC, then stored in memory and on disk (fsync included).
void BM_ColdCompile_KernelCache(benchmark::State& state) {
  KernelCacheOptions o;
  o.disk.directory = bench_dir("cold");
  KernelCache cache(o);
  Program p;
  for (auto _ : state) {
    p.source = unique_saxpy();
    benchmark::DoNotOptimize(cache.compile(p, Target::for_arch(90)).data());
  }
  fs::remove_all(o.disk.directory);
}
BENCHMARK(BM_ColdCompile_KernelCache)->Unit(benchmark::kMillisecond)->MinTime(2.0);

// The lookup alone, with a key the caller computed once.
void BM_MemoryHit_Find(benchmark::State& state) {
  KernelCacheOptions o;
  o.use_disk = false;
  KernelCache cache(o);
  Program p;
  p.source = kSaxpy;
  const CacheKey key = cache.compile(p, Target::for_arch(90)).key();
  for (auto _ : state) benchmark::DoNotOptimize(cache.find(key));
}
BENCHMARK(BM_MemoryHit_Find);

// compile() on a cached program: hashes the program, then the lookup.
void BM_MemoryHit_Compile(benchmark::State& state) {
  KernelCacheOptions o;
  o.use_disk = false;
  KernelCache cache(o);
  Program p;
  p.source = kSaxpy;
  cache.compile(p, Target::for_arch(90));
  for (auto _ : state) benchmark::DoNotOptimize(cache.compile(p, Target::for_arch(90)).data());
}
BENCHMARK(BM_MemoryHit_Compile);

// Read, verify (header, SHA-256 of the payload) and decode one entry.
void BM_DiskHit(benchmark::State& state) {
  DiskCache disk({bench_dir("disk"), 0});
  KernelCacheOptions o;
  o.use_disk = false;
  Program p;
  p.source = kSaxpy;
  const Artifact a = KernelCache(o).compile(p, Target::for_arch(90));
  disk.store(a);
  for (auto _ : state) benchmark::DoNotOptimize(disk.load(a.key()));
  fs::remove_all(disk.directory());
}
BENCHMARK(BM_DiskHit)->Unit(benchmark::kMicrosecond);

void BM_Cub_RawNvrtc(benchmark::State& state) {
  for (auto _ : state) raw_nvrtc_compile(unique_cub());
}
BENCHMARK(BM_Cub_RawNvrtc)->Unit(benchmark::kMillisecond)->Iterations(5);

// A new CUB kernel body each time, compiled with kiln's precompiled header warm in this process.
void BM_Cub_KernelCacheWithPch(benchmark::State& state) {
  KernelCacheOptions o;
  o.disk.directory = bench_dir("pch");
  o.precompiled_headers = true;
  KernelCache cache(o);
  Program p;
  p.source = unique_cub();
  cache.compile(p, Target::for_arch(90));  // creates the PCH (slower than a plain compile)
  for (auto _ : state) {
    p.source = unique_cub();
    benchmark::DoNotOptimize(cache.compile(p, Target::for_arch(90)).data());
  }
  state.counters["pch_bytes"] = double(cache.disk()->usage().pch_bytes);
  fs::remove_all(o.disk.directory);
}
BENCHMARK(BM_Cub_KernelCacheWithPch)->Unit(benchmark::kMillisecond)->Iterations(5);

}  // namespace

BENCHMARK_MAIN();
