// Kernels the core tests and benchmarks launch, compiled at run time with NVRTC.
#pragma once

namespace kiln::testing {

inline constexpr const char* kCoreKernels = R"(
__device__ unsigned long long now_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
extern "C" __global__ void empty() {}
extern "C" __global__ void add_one(int* p, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) p[i] += 1;
}
extern "C" __global__ void set_value(int* p, int v) { *p = v; }
extern "C" __global__ void saxpy(float a, const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
// Waits `ns` nanoseconds on the GPU clock, then writes: a slow producer.
extern "C" __global__ void spin_then_set(int* p, int v, unsigned long long ns) {
  unsigned long long start = now_ns();
  while (now_ns() - start < ns) {}
  *p = v;
}
extern "C" __global__ void copy_value(const int* src, int* dst) { *dst = *src; }
extern "C" __global__ void double_into(const int* in, int* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = 2 * in[i];
}
extern "C" __global__ void record_cluster(unsigned* out) {
  unsigned rank;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
  unsigned nctas;
  asm volatile("mov.u32 %0, %%cluster_nctarank;" : "=r"(nctas));
  if (threadIdx.x == 0) out[blockIdx.x] = nctas * 100 + rank;
}
extern "C" __global__ void add_scalar(float* y, float v) { y[threadIdx.x] += v; }
)";

}  // namespace kiln::testing
