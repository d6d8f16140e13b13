// Small kernels shared by the JIT tests.
#pragma once

namespace kiln::jit::test_kernels {

inline constexpr const char* kSaxpy = R"(
extern "C" __global__ void saxpy(float a, const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
)";

inline constexpr const char* kTemplated = R"(
template <int N> __global__ void fill(int* out) { out[threadIdx.x] = N; }
)";

inline constexpr const char* kCubReduce = R"(
#include <cub/block/block_reduce.cuh>
extern "C" __global__ void block_sum(const int* in, int* out) {
  using Reduce = cub::BlockReduce<int, 128>;
  __shared__ typename Reduce::TempStorage storage;
  int total = Reduce(storage).Sum(in[threadIdx.x]);
  if (threadIdx.x == 0) *out = total;
}
)";

}  // namespace kiln::jit::test_kernels
