#include "kiln/driver/check.hpp"

#include <string>

#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::driver {

void throw_driver_error(CUresult result, const char* call, std::source_location where) {
  std::string detail;
  if (result == CUDA_ERROR_NOT_FOUND) {
    // kiln's stub for an entry point the driver lacks answers CUDA_ERROR_NOT_FOUND: say which.
    for (const MissingEntry& m : driver_state().missing)
      if (m.name == call)
        detail = "This driver (CUDA " + format_cuda_version(driver_state().cuda_version) +
                 ") lacks " + m.name + ", which needs a driver for CUDA " +
                 format_cuda_version(m.needs_cuda_version) + " or newer.";
  }
  throw Error(Domain::driver, static_cast<int>(result), call, std::move(detail), where);
}

void throw_nvrtc_error(nvrtcResult result, const char* call, std::source_location where) {
  throw Error(Domain::nvrtc, static_cast<int>(result), call, {}, where);
}

}  // namespace kiln::driver
