// nvJitLink (the CUDA device-code linker), loaded at run time like NVRTC. Search order (first that
// loads wins):
//   1. KILN_NVJITLINK_PATH: a library file, or a folder holding one. When set, nothing else is
//      tried: a wrong path is an error naming it.
//   2. $CUDA_HOME, then $CUDA_PATH: <root>/lib64, <root>/lib, <root>/targets/<arch>-linux/lib
//   3. the toolkit found when kiln was built, same folders
//   4. the dynamic loader's own search path
// In each folder the sonames of CUDA 13, then 12, are tried (libnvJitLink.so.13, .so.12).
//
// nvJitLink is optional: without it kiln compiles and runs kernels as before, and only linking
// (jit/linker.hpp) fails, with Errc::nvjitlink_not_found naming every path tried.
//
// Thread safety: loaded once, then immutable.
#pragma once

#if __has_include(<nvJitLink.h>)
#include <nvJitLink.h>
#define KILN_HAVE_NVJITLINK_H 1
#else
// Headers older than CUDA 12.0 (11.8's) have none: kiln's own declarations of the same C API.
#include "kiln/driver/nvjitlink_compat.hpp"
#define KILN_HAVE_NVJITLINK_H 0
#endif

#include <optional>
#include <string>
#include <vector>

#include "kiln/driver/loaded_library.hpp"

namespace kiln::driver {

struct NvJitLinkApi {
#define KILN_NVJITLINK_FN(name, required) decltype(&::name) name = nullptr;
#include "kiln/driver/nvjitlink_functions.def"
#undef KILN_NVJITLINK_FN
  std::vector<std::string> absent;  // optional entry points this nvJitLink lacks
  bool has(const char* name) const;
};

struct NvJitLinkVersion {
  int major = 0;  // 0: unknown (nvJitLinkVersion is absent before CUDA 12.3)
  int minor = 0;
  int as_cuda_version() const { return major * 1000 + minor * 10; }  // 13.0 -> 13000
};

// Where to look, read from the environment by from_environment(); tests build their own.
struct NvJitLinkSearch {
  std::optional<std::string> explicit_path;  // KILN_NVJITLINK_PATH
  std::vector<std::string> toolkit_roots;    // $CUDA_HOME, $CUDA_PATH, build-time root (in order)
  bool use_loader_path = true;

  static NvJitLinkSearch from_environment();
};

struct NvJitLinkLibrary {
  LoadedLibrary library;
  NvJitLinkApi api;
  NvJitLinkVersion version;
  void* handle = nullptr;  // dlopen handle, never closed
};

// The files one search tries, in order.
std::vector<std::string> nvjitlink_candidates(const NvJitLinkSearch& search);

// The real path of the file open_nvjitlink(search) would load, found without loading anything (as
// locate_nvrtc does for NVRTC); nullopt when no candidate exists.
std::optional<std::string> locate_nvjitlink(const NvJitLinkSearch& search);

// Runs one search and loads the first candidate that works. Throws kiln::Error
// (Errc::nvjitlink_not_found naming every path tried, or Errc::symbol_missing).
NvJitLinkLibrary open_nvjitlink(const NvJitLinkSearch& search);

// The process-wide nvJitLink, found with NvJitLinkSearch::from_environment() on first use.
// Throws what open_nvjitlink threw, on every call (the failure is remembered).
const NvJitLinkLibrary& nvjitlink_library();
const NvJitLinkApi& nvjitlink();

// Never throws: the library's record whether or not it loaded. Loads nvJitLink on first call.
const LoadedLibrary& nvjitlink_info() noexcept;

// LTO-IR is read only by an nvJitLink of the same major version as the NVRTC that wrote it, and
// no older minor version. The mismatch and its consequence, or nullopt when the two agree or a
// version is unknown (0). CUDA versions as numbers: 13000 for 13.0.
std::optional<std::string> lto_version_mismatch(int nvrtc_cuda_version, int nvjitlink_cuda_version);

}  // namespace kiln::driver
