// A compile bomb for tests of compile-time limits: a few hundred bytes that instantiate CUB's block
// radix sort for 32 shapes. NVRTC needs tens of seconds for it on any machine (one shape costs about
// as much as a whole small CUB kernel), so a limit of a few seconds always ends it while a small
// kernel always fits in that limit, however loaded the machine: no timing luck either way.
// It includes only what kilnd's source policy allows.
#pragma once

#include <string>

namespace kiln::testing {

inline std::string compile_bomb() {
  return "#include <cub/block/block_radix_sort.cuh>\n"
         "#include <cuda/std/utility>\n"
         "template <int N> __device__ void sort_one(int* d) {\n"
         "  using S = cub::BlockRadixSort<int, 64, N>;\n"
         "  __shared__ typename S::TempStorage t;\n"
         "  int k[N];\n"
         "  for (int i = 0; i < N; ++i) k[i] = d[threadIdx.x * N + i];\n"
         "  S(t).Sort(k);\n"
         "  for (int i = 0; i < N; ++i) d[threadIdx.x * N + i] = k[i];\n"
         "}\n"
         "template <int... N> __device__ void all(int* d, cuda::std::integer_sequence<int, N...>) {\n"
         "  (sort_one<N + 1>(d), ...);\n"
         "}\n"
         "extern \"C\" __global__ void bomb(int* d) { all(d, cuda::std::make_integer_sequence<int, 32>{}); }\n";
}

}  // namespace kiln::testing
