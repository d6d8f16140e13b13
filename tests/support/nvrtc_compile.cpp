#include "support/nvrtc_compile.hpp"

#include <cstdlib>

#include "kiln/driver/check.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/driver/nvrtc_api.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/jit/compiler.hpp"

namespace kiln::testing {

std::string compile_for_test(const std::string& source, int arch, bool ptx) {
  jit::Program program;
  program.name = "test.cu";
  program.source = source;
  const auto target = jit::Target::for_arch(arch, ptx ? jit::ImageKind::ptx : jit::ImageKind::cubin);
  return std::string(jit::compile(program, target).value().image());
}

int device0_arch() {
  const auto& cu = driver::cuda();
  int major = 0, minor = 0;
  driver::check(cu.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 0), "cuDeviceGetAttribute");
  driver::check(cu.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 0), "cuDeviceGetAttribute");
  return major * 10 + minor;
}

int expected_nvrtc_major() {
  if (const char* v = std::getenv("KILN_TEST_NVRTC_MAJOR"); v && *v) return std::atoi(v);
  return CUDA_VERSION / 1000;
}

std::string nvrtc_older_than(int cuda_version, const std::string& what) {
  try {
    const driver::NvrtcLibrary& nvrtc = driver::nvrtc_library();
    const int have = nvrtc.version.as_cuda_version();
    if (have >= cuda_version) return {};
    return "NVRTC " + driver::format_cuda_version(have) + " (" + nvrtc.library.path + ") is older than " +
           driver::format_cuda_version(cuda_version) + ", which " + what + " needs";
  } catch (const Error&) {
    return {};
  }
}

std::string nvrtc_lacks(const std::string& entry, const std::string& what) {
  try {
    const driver::NvrtcLibrary& nvrtc = driver::nvrtc_library();
    if (nvrtc.api.has(entry.c_str())) return {};
    return "NVRTC " + nvrtc.library.version + " (" + nvrtc.library.path + ") lacks " + entry + ", which " + what +
           " needs";
  } catch (const Error&) {
    return {};
  }
}

}  // namespace kiln::testing
