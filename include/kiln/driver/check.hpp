// Turning a library's return code into kiln::Error. The success path is one comparison; the
// message is built only on failure, out of line.
#pragma once

#include <cuda.h>
#include <nvrtc.h>

#include <source_location>

namespace kiln::driver {

[[noreturn]] void throw_driver_error(CUresult result, const char* call, std::source_location where);
[[noreturn]] void throw_nvrtc_error(nvrtcResult result, const char* call,
                                    std::source_location where);

inline void check(CUresult result, const char* call,
                  std::source_location where = std::source_location::current()) {
  if (result != CUDA_SUCCESS) [[unlikely]] throw_driver_error(result, call, where);
}

inline void check(nvrtcResult result, const char* call,
                  std::source_location where = std::source_location::current()) {
  if (result != NVRTC_SUCCESS) [[unlikely]] throw_nvrtc_error(result, call, where);
}

}  // namespace kiln::driver
