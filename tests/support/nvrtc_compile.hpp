// Compiles test kernels with the real NVRTC through kiln's JIT (which has its own tests; GPU tests of
// other layers only need bytes to load).
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace kiln::testing {

// CUBIN for sm_<arch> (e.g. 90), or PTX for compute_<arch> when `ptx` is set. Throws kiln::Error
// with NVRTC's log on failure.
std::string compile_for_test(const std::string& source, int arch, bool ptx = false);

// The compute capability of device 0 as NVRTC's architecture number (90 for sm_90).
int device0_arch();

// The major version of the NVRTC the tests should find: KILN_TEST_NVRTC_MAJOR where a run picks
// another toolkit's NVRTC on purpose (scripts/portability: 11.8 headers with NVRTC 13.0), else that
// of the headers kiln was built with.
int expected_nvrtc_major();

// Why the process's NVRTC cannot run a test that needs `what` of CUDA `cuda_version` (12000 for
// 12.0), or "" when it can: "NVRTC 11.8 (<path>) is older than 12.0, which <what> needs". An NVRTC
// that does not load is not a reason (the test then fails as it would have).
std::string nvrtc_older_than(int cuda_version, const std::string& what);

// The same for an entry point the process's NVRTC lacks (nvrtc_functions.def's optional ones):
// "NVRTC 11.8 (<path>) lacks nvrtcGetLTOIR, which <what> needs", or "".
std::string nvrtc_lacks(const std::string& entry, const std::string& what);

}  // namespace kiln::testing

// Skips the running test, saying why, when the loaded NVRTC is older than `cuda_version`: for the
// runs with another toolkit's NVRTC (KILN_NVRTC_PATH; docs/PORTABILITY.md).
#define KILN_SKIP_UNLESS_NVRTC(cuda_version, what)                                                  \
  if (const std::string kiln_skip_reason_ = ::kiln::testing::nvrtc_older_than((cuda_version), (what)); \
      !kiln_skip_reason_.empty())                                                                   \
  GTEST_SKIP() << kiln_skip_reason_
#define KILN_SKIP_UNLESS_NVRTC_HAS(entry, what)                                                    \
  if (const std::string kiln_skip_reason_ = ::kiln::testing::nvrtc_lacks((entry), (what));           \
      !kiln_skip_reason_.empty())                                                                   \
  GTEST_SKIP() << kiln_skip_reason_
