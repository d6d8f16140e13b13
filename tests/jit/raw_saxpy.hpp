// Runs a `saxpy(float a, const float* x, float* y, int n)` image (or a kernel of another name with
// that signature and meaning) on device 0 through the raw driver
// API (no kiln core: the JIT's tests check the image alone) with a = 2, x[i] = i, y[i] = 1, and
// checks y[i] = 2i + 1. Shared by the JIT's GPU test and its child process.
#pragma once

#include <string>
#include <vector>

#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"

namespace kiln::testing {

// Empty when every element is right, else which one is wrong. Driver errors throw kiln::Error.
inline std::string run_saxpy_raw(const void* image, int n, const char* kernel = "saxpy") {
  using kiln::driver::check;
  const auto& cu = kiln::driver::cuda();
  CUdevice dev;
  check(cu.cuDeviceGet(&dev, 0), "cuDeviceGet");
  CUcontext ctx;
  check(cu.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain");
  check(cu.cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
  CUmodule module;
  check(cu.cuModuleLoadData(&module, image), "cuModuleLoadData");
  CUfunction fn;
  check(cu.cuModuleGetFunction(&fn, module, kernel), "cuModuleGetFunction");
  std::vector<float> x(static_cast<std::size_t>(n)), y(static_cast<std::size_t>(n), 1.0f);
  for (int i = 0; i < n; ++i) x[static_cast<std::size_t>(i)] = float(i);
  const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(float);
  CUdeviceptr dx, dy;
  check(cu.cuMemAlloc(&dx, bytes), "cuMemAlloc");
  check(cu.cuMemAlloc(&dy, bytes), "cuMemAlloc");
  check(cu.cuMemcpyHtoD(dx, x.data(), bytes), "cuMemcpyHtoD");
  check(cu.cuMemcpyHtoD(dy, y.data(), bytes), "cuMemcpyHtoD");
  float a = 2.0f;
  int count = n;
  void* args[] = {&a, &dx, &dy, &count};
  check(cu.cuLaunchKernel(fn, static_cast<unsigned>((n + 127) / 128), 1, 1, 128, 1, 1, 0, nullptr, args, nullptr),
        "cuLaunchKernel");
  check(cu.cuCtxSynchronize(ctx), "cuCtxSynchronize");
  check(cu.cuMemcpyDtoH(y.data(), dy, bytes), "cuMemcpyDtoH");
  std::string wrong;
  for (int i = 0; i < n && wrong.empty(); ++i)
    if (y[static_cast<std::size_t>(i)] != 2.0f * float(i) + 1.0f)
      wrong = "y[" + std::to_string(i) + "] = " + std::to_string(y[static_cast<std::size_t>(i)]) + ", expected " +
              std::to_string(2.0 * i + 1.0);
  cu.cuMemFree(dx);
  cu.cuMemFree(dy);
  cu.cuModuleUnload(module);
  cu.cuDevicePrimaryCtxRelease(dev);
  return wrong;
}

}  // namespace kiln::testing
