#include "support/nvrtc_compile.hpp"

#include <vector>

#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/driver/nvrtc_api.hpp"

namespace kiln::testing {

std::string compile_for_test(const std::string& source, int arch, bool ptx) {
  const auto& nv = driver::nvrtc();
  nvrtcProgram prog = nullptr;
  driver::check(nv.nvrtcCreateProgram(&prog, source.c_str(), "test.cu", 0, nullptr, nullptr), "nvrtcCreateProgram");
  const std::string target = (ptx ? "--gpu-architecture=compute_" : "--gpu-architecture=sm_") + std::to_string(arch);
  const char* options[] = {target.c_str(), "-std=c++17"};
  nvrtcResult r = nv.nvrtcCompileProgram(prog, 2, options);
  if (r != NVRTC_SUCCESS) {
    size_t n = 0;
    nv.nvrtcGetProgramLogSize(prog, &n);
    std::string log(n, '\0');
    nv.nvrtcGetProgramLog(prog, log.data());
    nv.nvrtcDestroyProgram(&prog);
    throw Error(Domain::nvrtc, r, "nvrtcCompileProgram", log);
  }
  size_t n = 0;
  std::string out;
  if (ptx) {
    driver::check(nv.nvrtcGetPTXSize(prog, &n), "nvrtcGetPTXSize");
    out.resize(n);
    driver::check(nv.nvrtcGetPTX(prog, out.data()), "nvrtcGetPTX");
  } else {
    driver::check(nv.nvrtcGetCUBINSize(prog, &n), "nvrtcGetCUBINSize");
    out.resize(n);
    driver::check(nv.nvrtcGetCUBIN(prog, out.data()), "nvrtcGetCUBIN");
  }
  nv.nvrtcDestroyProgram(&prog);
  return out;
}

int device0_arch() {
  const auto& cu = driver::cuda();
  int major = 0, minor = 0;
  driver::check(cu.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 0), "cuDeviceGetAttribute");
  driver::check(cu.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 0), "cuDeviceGetAttribute");
  return major * 10 + minor;
}

}  // namespace kiln::testing
