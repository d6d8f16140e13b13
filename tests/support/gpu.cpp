#include "support/gpu.hpp"

#include <cstdlib>

#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::testing {

std::string why_no_gpu() {
  const auto& state = driver::driver_state();
  if (!state.api) return "no NVIDIA driver: " + state.library.failure;
  if (state.init_result != CUDA_SUCCESS) {
    const ErrorInfo* e = find_error(Domain::driver, state.init_result);
    return "cuInit failed: " + std::string(e ? e->name : "unknown");
  }
  int count = 0;
  state.api->cuDeviceGetCount(&count);
  if (count == 0) return "the driver reports no GPU";
  return {};
}

bool gpu_required() {
  const char* v = std::getenv("KILN_REQUIRE_GPU");
  return v && std::string(v) == "1";
}

}  // namespace kiln::testing
