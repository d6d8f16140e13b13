#include "driver/detail/dynamic_library.hpp"
#include "kiln/driver/environment.hpp"
#include "kiln/driver/nvml_api.hpp"

namespace kiln::driver {
namespace {

NvmlState load_nvml() {
  NvmlState state;
  state.library.name = "NVML";
  state.library.copies = find_library_copies(
      loader_search_dirs(detail::getenv_or_empty("LD_LIBRARY_PATH")), {"libnvidia-ml.so.1"});
  detail::Opened lib = detail::open_library("libnvidia-ml.so.1");
  if (!lib.handle) {
    state.library.tried.push_back("libnvidia-ml.so.1: " + lib.error);
    state.library.failure = "libnvidia-ml.so.1 could not be loaded: " + lib.error;
    return state;
  }
  state.library.path = detail::real_path_of(lib.handle);

  static NvmlApi api;
  bool complete = true;
  auto bind = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(detail::find_symbol(lib.handle, name));
    complete = complete && fn != nullptr;
  };
  bind(api.nvmlInit_v2, "nvmlInit_v2");
  bind(api.nvmlShutdown, "nvmlShutdown");
  bind(api.nvmlErrorString, "nvmlErrorString");
  bind(api.nvmlSystemGetDriverVersion, "nvmlSystemGetDriverVersion");
  bind(api.nvmlSystemGetNVMLVersion, "nvmlSystemGetNVMLVersion");
  bind(api.nvmlSystemGetCudaDriverVersion_v2, "nvmlSystemGetCudaDriverVersion_v2");
  bind(api.nvmlDeviceGetCount_v2, "nvmlDeviceGetCount_v2");
  bind(api.nvmlDeviceGetHandleByIndex_v2, "nvmlDeviceGetHandleByIndex_v2");
  bind(api.nvmlDeviceGetHandleByUUID, "nvmlDeviceGetHandleByUUID");
  bind(api.nvmlDeviceGetUUID, "nvmlDeviceGetUUID");
  bind(api.nvmlDeviceGetName, "nvmlDeviceGetName");
  bind(api.nvmlDeviceGetIndex, "nvmlDeviceGetIndex");
  // Topology entry points are optional: an NVML without them still gives the driver version.
  auto bind_optional = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(detail::find_symbol(lib.handle, name));
  };
  bind_optional(api.nvmlDeviceGetPciInfo_v3, "nvmlDeviceGetPciInfo_v3");
  bind_optional(api.nvmlDeviceGetMemoryInfo, "nvmlDeviceGetMemoryInfo");
  bind_optional(api.nvmlDeviceGetNvLinkState, "nvmlDeviceGetNvLinkState");
  bind_optional(api.nvmlDeviceGetNvLinkRemotePciInfo_v2, "nvmlDeviceGetNvLinkRemotePciInfo_v2");
  bind_optional(api.nvmlDeviceGetNvLinkRemoteDeviceType, "nvmlDeviceGetNvLinkRemoteDeviceType");
  bind_optional(api.nvmlDeviceGetMigMode, "nvmlDeviceGetMigMode");
  bind_optional(api.nvmlDeviceGetMaxMigDeviceCount, "nvmlDeviceGetMaxMigDeviceCount");
  bind_optional(api.nvmlDeviceGetMigDeviceHandleByIndex, "nvmlDeviceGetMigDeviceHandleByIndex");
  bind_optional(api.nvmlDeviceGetGpuInstanceId, "nvmlDeviceGetGpuInstanceId");
  bind_optional(api.nvmlDeviceGetComputeInstanceId, "nvmlDeviceGetComputeInstanceId");
  if (!complete) {
    state.library.failure = state.library.path + " lacks NVML entry points kiln needs";
    return state;
  }
  if (nvml_return r = api.nvmlInit_v2(); r != 0) {
    state.library.failure = std::string("nvmlInit_v2 failed: ") + api.nvmlErrorString(r);
    return state;
  }
  char text[96] = {};
  if (api.nvmlSystemGetNVMLVersion(text, sizeof text) == 0) state.library.version = text;
  if (api.nvmlSystemGetDriverVersion(text, sizeof text) == 0) state.driver_version = text;
  state.library.loaded = true;
  state.api = &api;
  return state;
}

}  // namespace

const NvmlState& nvml_state() noexcept {
  static const NvmlState state = load_nvml();
  return state;
}

}  // namespace kiln::driver
