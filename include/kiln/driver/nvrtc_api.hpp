// NVRTC, loaded at run time. Search order (first that loads wins):
//   1. KILN_NVRTC_PATH: a library file, or a folder holding one. When set, nothing else is tried:
//      a wrong path is an error naming it, not a silent fall-back to another NVRTC.
//   2. $CUDA_HOME, then $CUDA_PATH: <root>/lib64, <root>/lib, <root>/targets/<arch>-linux/lib
//   3. the toolkit found when kiln was built, same folders
//   4. the dynamic loader's own search path
// In each folder the sonames of CUDA 13, then 12, are tried (libnvrtc.so.13, libnvrtc.so.12).
//
// Loading NVRTC (dlopen of a ~100 MB library) costs about 10 ms; a disk-cache hit needs only which
// file would load (nvrtc_location(), found without loading it) and facts kept about that file (see
// jit/nvrtc_facts.hpp), so nvrtc_library() runs only when something is compiled or asked of NVRTC.
//
// Thread safety: as cuda_api.hpp: loaded once, then immutable.
#pragma once

#include <nvrtc.h>

#include "kiln/driver/nvrtc_compat.hpp"  // what headers older than CUDA 12 lack

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

// The files one search tries, in order: paths (a '/' in them), and bare sonames for the dynamic
// loader's own search.
std::vector<std::string> nvrtc_candidates(const NvrtcSearch& search);

// Runs one search and loads the first candidate that works. Throws kiln::Error
// (Errc::nvrtc_not_found naming every path tried, or Errc::symbol_missing).
NvrtcLibrary open_nvrtc(const NvrtcSearch& search);

// The real path of the file open_nvrtc(search) would load, found without loading anything: the
// first candidate that exists. For a bare soname that is the library already in the process under
// that name, else the first file of that name in the folders dlopen searches for kiln's code
// (RPATH/RUNPATH and LD_LIBRARY_PATH as the dynamic loader reports them, /etc/ld.so.conf's folders
// for the loader's cache, which ldconfig builds from them, then the system folders). nullopt when
// no candidate exists. A prediction: a file that exists but would not load is still named, where
// open_nvrtc would go on to the next candidate.
std::optional<std::string> locate_nvrtc(const NvrtcSearch& search);

// The process-wide NVRTC, found with NvrtcSearch::from_environment() on first use.
// Throws what open_nvrtc threw, on every call (the failure is remembered).
const NvrtcLibrary& nvrtc_library();
const NvrtcApi& nvrtc();

// Never throws: the library's record whether or not it loaded. Loads NVRTC on first call.
const LoadedLibrary& nvrtc_info() noexcept;

// Whether nvrtc_library() has loaded NVRTC in this process. Never loads it.
bool nvrtc_loaded() noexcept;

// The real path of the process-wide NVRTC's file: the loaded one once nvrtc_library() has loaded
// it, else locate_nvrtc(NvrtcSearch::from_environment()), computed once. Never loads NVRTC.
std::optional<std::string> nvrtc_location();

// The toolkit root kiln was built with ("" when unknown).
std::string built_toolkit_root();

}  // namespace kiln::driver
