#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include "driver/detail/dynamic_library.hpp"
#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/environment.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::driver {
namespace {

// Stands in for an entry point the driver lacks: the call fails with a code, never crashes.
template <typename Fn>
struct MissingEntryStub;
template <typename... Args>
struct MissingEntryStub<CUresult(CUDAAPI*)(Args...)> {
  static CUresult CUDAAPI call(Args...) { return CUDA_ERROR_NOT_FOUND; }
};

// The driver's version string: from the file name (libcuda.so.580.159.04) or /proc.
std::string driver_version_from(const std::string& real_path) {
  static const std::regex so_version(R"(libcuda\.so\.(\d+\.\d+(\.\d+)?)$)");
  std::smatch m;
  if (std::regex_search(real_path, m, so_version)) return m[1];
  std::ifstream proc("/proc/driver/nvidia/version");
  std::string line;
  static const std::regex kernel_module(R"(Kernel Module\s+(?:for \S+\s+)?(\d+\.\d+(\.\d+)?))");
  if (std::getline(proc, line) && std::regex_search(line, m, kernel_module)) return m[1];
  return {};
}

DriverState load_driver() {
  DriverState state;
  state.library.name = "libcuda";
  state.library.copies = find_library_copies(
      loader_search_dirs(detail::getenv_or_empty("LD_LIBRARY_PATH")), {"libcuda.so.1"});

  detail::Opened lib = detail::open_library("libcuda.so.1");
  if (!lib.handle) {
    state.library.tried.push_back("libcuda.so.1: " + lib.error);
    state.library.failure = "libcuda.so.1 could not be loaded: " + lib.error;
    return state;
  }
  state.library.path = detail::real_path_of(lib.handle);
  state.library.version = driver_version_from(state.library.path);

  // cuGetProcAddress_v2 appeared with CUDA 12.0; its older form lacks the status argument.
  auto get_v2 = reinterpret_cast<PFN_cuGetProcAddress_v12000>(
      detail::find_symbol(lib.handle, "cuGetProcAddress_v2"));
  auto get_v1 = reinterpret_cast<PFN_cuGetProcAddress_v11030>(
      detail::find_symbol(lib.handle, "cuGetProcAddress"));
  if (!get_v2 && !get_v1) {
    state.library.failure = state.library.path +
                            " has no cuGetProcAddress: the driver is older than CUDA 11.3";
    return state;
  }
  auto lookup = [&](const char* name, int version, void** fn) {
    CUdriverProcAddressQueryResult status{};
    CUresult r = get_v2 ? get_v2(name, fn, version, CU_GET_PROC_ADDRESS_LEGACY_STREAM, &status)
                        : get_v1(name, fn, version, CU_GET_PROC_ADDRESS_LEGACY_STREAM);
    return r == CUDA_SUCCESS && *fn != nullptr &&
           (!get_v2 || status == CU_GET_PROC_ADDRESS_SUCCESS);
  };

  void* version_fn = nullptr;
  if (lookup("cuDriverGetVersion", 2020, &version_fn))
    reinterpret_cast<PFN_cuDriverGetVersion_v2020>(version_fn)(&state.cuda_version);

  static CudaApi api;
  // An entry point is taken only when the driver is at least as new as the ABI kiln was compiled
  // for: an older driver would hand back an older function with another signature.
#define KILN_DRIVER_FN(name, version)                                                   \
  {                                                                                      \
    void* fn = nullptr;                                                                  \
    if (state.cuda_version >= (version) && lookup(#name, (version), &fn)) {              \
      api.name = reinterpret_cast<PFN_##name##_v##version>(fn);                          \
    } else {                                                                             \
      api.name = &MissingEntryStub<PFN_##name##_v##version>::call;                       \
      state.missing.push_back({#name, (version)});                                       \
    }                                                                                    \
  }
#include "kiln/driver/driver_functions.def"
#undef KILN_DRIVER_FN

  state.api = &api;
  state.library.loaded = true;
  state.init_result = api.cuInit(0);
  return state;
}

}  // namespace

const DriverState& driver_state() noexcept {
  static const DriverState state = load_driver();
  return state;
}

const CudaApi& cuda() {
  const DriverState& s = driver_state();
  if (!s.api) throw Error(Errc::driver_not_found, s.library.failure);
  if (s.init_result != CUDA_SUCCESS) throw_driver_error(s.init_result, "cuInit", std::source_location::current());
  return *s.api;
}

std::string format_uuid(const CUuuid& uuid) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string s = "GPU-";
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    auto b = static_cast<unsigned char>(uuid.bytes[i]);
    s += hex[b >> 4];
    s += hex[b & 15];
  }
  return s;
}

std::string format_cuda_version(int version) {
  return std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
}

}  // namespace kiln::driver
