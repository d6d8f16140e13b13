// What kiln learned while loading one of the GPU libraries: which file won, its version, what
// was tried and why it failed, and the other copies on the loader path.
#pragma once

#include <string>
#include <vector>

namespace kiln::driver {

struct LoadedLibrary {
  std::string name;                 // "libcuda", "NVRTC", "NVML"
  bool loaded = false;
  std::string path;                 // real path (symbolic links resolved) of the loaded file
  std::string version;              // "580.159.04" for libcuda, "13.0" for NVRTC
  std::vector<std::string> tried;   // each candidate in search order, with why it failed
  std::string failure;              // why nothing loaded; empty when loaded
  std::vector<std::string> copies;  // every distinct copy found on the loader's search path
};

}  // namespace kiln::driver
