// Small helpers shared by the plain-harness benchmarks: timing, and kernels compiled through kiln.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "kiln/jit/compiler.hpp"

namespace kiln::bench {

using clk = std::chrono::steady_clock;

inline double us_since(clk::time_point t) { return std::chrono::duration<double, std::micro>(clk::now() - t).count(); }
inline double ms_since(clk::time_point t) { return std::chrono::duration<double, std::milli>(clk::now() - t).count(); }

// The p-quantile (0..1) of the samples; 0.5 is the median (the upper middle of an even count).
inline double quantile(std::vector<double> v, double p) {
  if (v.empty()) return 0;  // a section that measured nothing (no GPU) reports 0
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5)];
}
inline double median(std::vector<double> v) { return quantile(std::move(v), 0.5); }

// A CUBIN for sm_<arch> of `source`, compiled by kiln's JIT (throws kiln::Error with diagnostics).
inline std::string cubin_for(const char* source, int arch) {
  jit::Program program;
  program.name = "bench.cu";
  program.source = source;
  return std::string(jit::compile(program, jit::Target::for_arch(arch)).value().image());
}

}  // namespace kiln::bench
