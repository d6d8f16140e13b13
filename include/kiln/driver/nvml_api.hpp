// NVML (libnvidia-ml.so.1), optional: loaded when present, used for facts the CUDA driver does not
// give (the driver's own version string, NVLink). kiln declares the few NVML types it needs itself,
// since nvml.h is not part of every toolkit.
//
// Thread safety: loaded and initialised once; immutable afterwards.
#pragma once

#include "kiln/driver/loaded_library.hpp"

namespace kiln::driver {

using nvml_return = int;  // nvmlReturn_t
using nvml_device = struct nvmlDevice_st*;

struct NvmlApi {
  nvml_return (*nvmlInit_v2)() = nullptr;
  nvml_return (*nvmlShutdown)() = nullptr;
  const char* (*nvmlErrorString)(nvml_return) = nullptr;
  nvml_return (*nvmlSystemGetDriverVersion)(char*, unsigned) = nullptr;
  nvml_return (*nvmlSystemGetNVMLVersion)(char*, unsigned) = nullptr;
  nvml_return (*nvmlSystemGetCudaDriverVersion_v2)(int*) = nullptr;
  nvml_return (*nvmlDeviceGetCount_v2)(unsigned*) = nullptr;
  nvml_return (*nvmlDeviceGetHandleByIndex_v2)(unsigned, nvml_device*) = nullptr;
  nvml_return (*nvmlDeviceGetHandleByUUID)(const char*, nvml_device*) = nullptr;
  nvml_return (*nvmlDeviceGetUUID)(nvml_device, char*, unsigned) = nullptr;
  nvml_return (*nvmlDeviceGetName)(nvml_device, char*, unsigned) = nullptr;
  nvml_return (*nvmlDeviceGetIndex)(nvml_device, unsigned*) = nullptr;
};

struct NvmlState {
  LoadedLibrary library;
  const NvmlApi* api = nullptr;  // null when NVML is absent or nvmlInit failed
  std::string driver_version;    // "580.159.04"
};

const NvmlState& nvml_state() noexcept;

}  // namespace kiln::driver
