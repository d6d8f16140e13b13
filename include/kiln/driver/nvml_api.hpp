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

// The NVML types kiln uses, with the layouts of nvml.h as shipped with CUDA 12.x and 13.0 (NVML API
// version 12/13; unchanged since nvmlPciInfo_t gained busIdLegacy in NVML 9).
inline constexpr nvml_return kNvmlSuccess = 0;              // NVML_SUCCESS
inline constexpr nvml_return kNvmlErrorInvalidArgument = 2; // NVML_ERROR_INVALID_ARGUMENT
inline constexpr nvml_return kNvmlErrorNotSupported = 3;    // NVML_ERROR_NOT_SUPPORTED
inline constexpr unsigned kNvmlNvLinkMaxLinks = 18;         // NVML_NVLINK_MAX_LINKS
inline constexpr unsigned kNvmlDeviceMigEnable = 1;         // NVML_DEVICE_MIG_ENABLE

struct NvmlPciInfo {              // nvmlPciInfo_t
  char busIdLegacy[16];           // NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int pciDeviceId;       // device id << 16 | vendor id
  unsigned int pciSubSystemId;
  char busId[32];                 // NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE: "00000000:3B:00.0"
};

struct NvmlMemory {               // nvmlMemory_t (v1)
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

using nvml_enable_state = int;    // nvmlEnableState_t: 0 disabled, 1 enabled
// nvmlIntNvLinkDeviceType_t
enum class NvmlNvLinkDeviceType : int { gpu = 0x00, ibm_npu = 0x01, nvswitch = 0x02, unknown = 0xFF };

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
  // Topology (optional: null when this NVML lacks them; callers check).
  nvml_return (*nvmlDeviceGetPciInfo_v3)(nvml_device, NvmlPciInfo*) = nullptr;
  nvml_return (*nvmlDeviceGetMemoryInfo)(nvml_device, NvmlMemory*) = nullptr;
  nvml_return (*nvmlDeviceGetNvLinkState)(nvml_device, unsigned, nvml_enable_state*) = nullptr;
  nvml_return (*nvmlDeviceGetNvLinkRemotePciInfo_v2)(nvml_device, unsigned, NvmlPciInfo*) = nullptr;
  nvml_return (*nvmlDeviceGetNvLinkRemoteDeviceType)(nvml_device, unsigned, NvmlNvLinkDeviceType*) = nullptr;
  nvml_return (*nvmlDeviceGetMigMode)(nvml_device, unsigned*, unsigned*) = nullptr;
  nvml_return (*nvmlDeviceGetMaxMigDeviceCount)(nvml_device, unsigned*) = nullptr;
  nvml_return (*nvmlDeviceGetMigDeviceHandleByIndex)(nvml_device, unsigned, nvml_device*) = nullptr;
  nvml_return (*nvmlDeviceGetGpuInstanceId)(nvml_device, unsigned*) = nullptr;
  nvml_return (*nvmlDeviceGetComputeInstanceId)(nvml_device, unsigned*) = nullptr;
};

struct NvmlState {
  LoadedLibrary library;
  const NvmlApi* api = nullptr;  // null when NVML is absent or nvmlInit failed
  std::string driver_version;    // "580.159.04"
};

const NvmlState& nvml_state() noexcept;

}  // namespace kiln::driver
