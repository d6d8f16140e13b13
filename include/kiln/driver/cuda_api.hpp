// The CUDA driver, loaded at run time: libcuda.so.1 through dlopen, every entry point through
// cuGetProcAddress. Nothing in kiln links against libcuda, so every binary starts without a driver.
//
// Thread safety: loading happens once, on first use, under the C++ static-initialisation guard;
// afterwards every function here is a read of immutable state and may be called from any thread.
#pragma once

#include <cuda.h>
#include <cudaTypedefs.h>

#include "kiln/driver/cuda_compat.hpp"  // what headers older than CUDA 13.0 lack

#include <string>
#include <vector>

#include "kiln/driver/loaded_library.hpp"

namespace kiln::driver {

// One member per entry point of driver_functions.def, typed with the PFN of the ABI kiln asked
// for. An entry the driver lacks (too old) points at a stub returning CUDA_ERROR_NOT_FOUND, so a
// call fails with an error instead of crashing; DriverState::missing lists them.
struct CudaApi {
#define KILN_DRIVER_FN(name, version) PFN_##name##_v##version name;
#include "kiln/driver/driver_functions.def"
#undef KILN_DRIVER_FN
};

struct MissingEntry {
  std::string name;
  int needs_cuda_version;  // e.g. 12080: the driver must support CUDA 12.8
};

struct DriverState {
  LoadedLibrary library;
  const CudaApi* api = nullptr;          // null when libcuda.so.1 could not be loaded
  CUresult init_result = CUDA_ERROR_NOT_INITIALIZED;  // what cuInit(0) returned
  int cuda_version = 0;                  // cuDriverGetVersion, e.g. 13000; 0 when unknown
  std::vector<MissingEntry> missing;     // entry points this driver lacks
};

// Loads the driver on first call and calls cuInit(0). Never throws.
const DriverState& driver_state() noexcept;

// The function table of an initialised driver. Throws kiln::Error: Errc::driver_not_found when
// there is no driver, the driver's own error (CUDA_ERROR_NO_DEVICE, ...) when cuInit failed.
const CudaApi& cuda();

// The CUDA version kiln was compiled against (CUDA_VERSION of its cuda.h), e.g. 13000.
constexpr int built_cuda_version() noexcept { return CUDA_VERSION; }

// "13.0" from 13000.
std::string format_cuda_version(int version);

// "GPU-8-4-4-4-12 hex digits", the form nvidia-smi and CUDA_VISIBLE_DEVICES use.
std::string format_uuid(const CUuuid& uuid);

}  // namespace kiln::driver
