// NVRTC, loaded at run time. Search order (first that loads wins):
//   1. KILN_NVRTC_PATH: a library file, or a folder holding one. When set, nothing else is tried:
//      a wrong path is an error naming it, not a silent fall-back to another NVRTC.
//   2. $CUDA_HOME, then $CUDA_PATH: <root>/lib64, <root>/lib, <root>/targets/<arch>-linux/lib
//   3. the toolkit found when kiln was built, same folders
//   4. the dynamic loader's own search path
// In each folder the sonames of CUDA 13, then 12, are tried (libnvrtc.so.13, libnvrtc.so.12).
//
// Thread safety: as cuda_api.hpp: loaded once, then immutable.
#pragma once

#include <nvrtc.h>

#include <optional>
#include <string>
#include <vector>

#include "kiln/driver/loaded_library.hpp"

namespace kiln::driver {

struct NvrtcApi {
#define KILN_NVRTC_FN(name, required) decltype(&::name) name = nullptr;
#include "kiln/driver/nvrtc_functions.def"
#undef KILN_NVRTC_FN
  std::vector<std::string> absent;  // optional entry points this NVRTC lacks
  bool has(const char* name) const;
};

struct NvrtcVersion {
  int major = 0;
  int minor = 0;
  int as_cuda_version() const { return major * 1000 + minor * 10; }  // 13.0 -> 13000
};

// Where to look, read from the environment by from_environment(); tests build their own.
struct NvrtcSearch {
  std::optional<std::string> explicit_path;  // KILN_NVRTC_PATH
  std::vector<std::string> toolkit_roots;    // $CUDA_HOME, $CUDA_PATH, build-time root (in order)
  bool use_loader_path = true;

  static NvrtcSearch from_environment();
};

struct NvrtcLibrary {
  LoadedLibrary library;
  NvrtcApi api;
  NvrtcVersion version;
  std::vector<int> supported_archs;  // 75, 80, 86, 89, 90, ... as NVRTC reports them
  void* handle = nullptr;            // dlopen handle, never closed
};

// Runs one search and loads the first candidate that works. Throws kiln::Error
// (Errc::nvrtc_not_found naming every path tried, or Errc::symbol_missing).
NvrtcLibrary open_nvrtc(const NvrtcSearch& search);

// The process-wide NVRTC, found with NvrtcSearch::from_environment() on first use.
// Throws what open_nvrtc threw, on every call (the failure is remembered).
const NvrtcLibrary& nvrtc_library();
const NvrtcApi& nvrtc();

// Never throws: the library's record whether or not it loaded.
const LoadedLibrary& nvrtc_info() noexcept;

// The toolkit root kiln was built with ("" when unknown).
std::string built_toolkit_root();

}  // namespace kiln::driver
