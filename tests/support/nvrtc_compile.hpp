// Compiles test kernels with the real NVRTC through kiln's JIT (which has its own tests; GPU tests of
// other layers only need bytes to load).
#pragma once

#include <string>

namespace kiln::testing {

// CUBIN for sm_<arch> (e.g. 90), or PTX for compute_<arch> when `ptx` is set. Throws kiln::Error
// with NVRTC's log on failure.
std::string compile_for_test(const std::string& source, int arch, bool ptx = false);

// The compute capability of device 0 as NVRTC's architecture number (90 for sm_90).
int device0_arch();

}  // namespace kiln::testing
