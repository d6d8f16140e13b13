// Device code for the link tests: a library function, kernels that call it (or something nobody
// defines), and a second definition of the library's function.
#pragma once

#include <string>

#include "kiln/jit/program.hpp"

namespace kiln::jit::test_kernels {

inline constexpr const char* kLibrarySource = R"(
extern "C" __device__ float scale_add(float a, float x, float y) { return a * x + y; }
)";

inline constexpr const char* kLibraryHeader = R"(
#pragma once
extern "C" __device__ float scale_add(float a, float x, float y);
)";

inline constexpr const char* kCallerSource = R"(
#include "scale_add.cuh"
extern "C" __global__ void linked_saxpy(float a, const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = scale_add(a, x[i], y[i]);
}
)";

inline constexpr const char* kWholeProgramSource = R"(
extern "C" __device__ float scale_add(float a, float x, float y) { return a * x + y; }
extern "C" __global__ void linked_saxpy(float a, const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = scale_add(a, x[i], y[i]);
}
)";

inline constexpr const char* kUndefinedCallerSource = R"(
extern "C" __device__ float nobody_defines_this(float x);
extern "C" __global__ void lonely(float* y) { y[0] = nobody_defines_this(y[0]); }
)";

inline constexpr const char* kSecondDefinitionSource = R"(
extern "C" __device__ float scale_add(float a, float x, float y) { return a * x - y; }
)";

inline Program program_of(std::string name, std::string source) {
  Program p;
  p.name = std::move(name);
  p.source = std::move(source);
  return p;
}

inline Program library_program() { return program_of("scale_add.cu", kLibrarySource); }

inline Program caller_program() {
  Program p = program_of("caller.cu", kCallerSource);
  p.headers.emplace("scale_add.cuh", kLibraryHeader);
  return p;
}

}  // namespace kiln::jit::test_kernels
