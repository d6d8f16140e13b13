// Driver layer costs: the success path of kiln's error check, the failure path (building the
// message), and a driver call through kiln's function table against the same call through a
// pointer taken straight from libcuda with dlsym (the raw baseline), in the same process.
#include <benchmark/benchmark.h>
#include <dlfcn.h>

#include <chrono>
#include <cstdio>

#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"

namespace {

void BM_CheckSuccess(benchmark::State& state) {
  CUresult r = CUDA_SUCCESS;
  for (auto _ : state) {
    benchmark::DoNotOptimize(r);
    kiln::driver::check(r, "cuNothing");
  }
}
BENCHMARK(BM_CheckSuccess);

void BM_CheckFailureBuildsError(benchmark::State& state) {
  for (auto _ : state) {
    try {
      kiln::driver::check(CUDA_ERROR_ILLEGAL_ADDRESS, "cuStreamSynchronize");
    } catch (const kiln::Error& e) {
      benchmark::DoNotOptimize(e.what());
    }
  }
}
BENCHMARK(BM_CheckFailureBuildsError);

void BM_LookupByName(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(kiln::find_error("CUDA_ERROR_LAUNCH_FAILED"));
}
BENCHMARK(BM_LookupByName);

// A cheap driver call: kiln's table versus raw dlsym.
void BM_DeviceAttribute_Kiln(benchmark::State& state) {
  const auto* api = kiln::driver::driver_state().api;
  if (!api || kiln::driver::driver_state().init_result != CUDA_SUCCESS) {
    state.SkipWithError("no driver");
    return;
  }
  int v = 0;
  for (auto _ : state) {
    kiln::driver::check(api->cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 0),
                        "cuDeviceGetAttribute");
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_DeviceAttribute_Kiln);

void BM_DeviceAttribute_RawDlsym(benchmark::State& state) {
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  auto fn = lib ? reinterpret_cast<PFN_cuDeviceGetAttribute_v2000>(dlsym(lib, "cuDeviceGetAttribute"))
                : nullptr;
  if (!fn || kiln::driver::driver_state().init_result != CUDA_SUCCESS) {
    state.SkipWithError("no driver");
    return;
  }
  int v = 0;
  for (auto _ : state) {
    if (fn(&v, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 0) != CUDA_SUCCESS) state.SkipWithError("failed");
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_DeviceAttribute_RawDlsym);

}  // namespace

int main(int argc, char** argv) {
  // Loading libcuda, resolving every entry point and cuInit happen once; report them apart.
  auto t0 = std::chrono::steady_clock::now();
  const auto& s = kiln::driver::driver_state();
  auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("driver load, entry points, cuInit: %.1f ms (%s; %zu entry points missing)\n", ms,
              s.api ? "driver found" : "no driver", s.missing.size());
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
