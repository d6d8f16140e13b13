// A full picture of the GPU software stack on this machine, with every problem found and what to
// do about it. `kiln doctor` prints it; the service's readiness check uses it.
//
// Thread safety: probe_environment() may be called from any thread; it returns a fresh value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::driver {

struct LibraryReport {
  bool found = false;
  std::string path;
  std::string version;
  std::string failure;
  std::vector<std::string> tried;
  std::vector<std::string> copies;
};

struct GpuReport {
  int ordinal = 0;
  std::string name;
  std::string uuid;        // "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", as nvidia-smi prints it
  std::string pci_bus_id;  // "0000:00:05.0"
  int cc_major = 0;
  int cc_minor = 0;
  std::uint64_t memory_total = 0;
  std::uint64_t memory_free = 0;  // 0 when the primary context could not be made
  int multiprocessors = 0;
  bool nvrtc_can_compile = false;  // NVRTC lists sm_<cc> among its real architectures
  int nvml_index = -1;             // nvidia-smi's number for this GPU; -1 without NVML
};

struct Problem {
  std::string id;       // stable identifier: "no_driver", "nvrtc_newer_than_driver", ...
  std::string message;  // what is wrong, with the facts
  std::string hint;     // what to do
};

struct EnvironmentReport {
  std::string kiln_version;
  int built_cuda_version = 0;
  std::string os;    // "Linux 6.1.0-18-amd64"
  std::string arch;  // "x86_64"

  LibraryReport driver;
  int driver_cuda_version = 0;  // cuDriverGetVersion; 0 when no driver
  std::string driver_init;      // cuInit's result name ("CUDA_SUCCESS") or empty

  LibraryReport nvrtc;
  std::vector<int> nvrtc_archs;

  LibraryReport nvml;

  // The device-code linker: optional (only linking needs it), so its absence is a note.
  LibraryReport nvjitlink;

  std::string toolkit_root;
  bool toolkit_include = false;
  bool toolkit_cccl = false;

  // How CUDA numbers GPUs here: CUDA ordinals follow CUDA_DEVICE_ORDER (fastest first unless
  // PCI_BUS_ID) within CUDA_VISIBLE_DEVICES; nvidia-smi numbers them by bus id.
  std::string cuda_device_order;    // the variable's value, empty when unset
  std::string cuda_visible_devices;  // the variable's value, empty when unset
  bool cuda_visible_devices_set = false;

  std::vector<GpuReport> gpus;
  std::vector<Problem> problems;
  // Worth knowing but not counted by healthy(): what only some uses of kiln need (linking).
  std::vector<Problem> notes;

  bool healthy() const { return problems.empty(); }
};

EnvironmentReport probe_environment();

// The checks behind the report, exposed so they can be tested with any versions.
// NVRTC newer than the driver: its PTX names a PTX ISA the driver's JIT does not know.
std::optional<Problem> check_version_alignment(int driver_cuda_version, int nvrtc_cuda_version);
// NVRTC older than the CUDA headers kiln was built with (a second toolkit selected with CUDA_HOME
// or KILN_NVRTC_PATH): names the architectures of `known_archs` it cannot target.
std::optional<Problem> check_nvrtc_older_than_build(int built_cuda_version, int nvrtc_cuda_version,
                                                    const std::vector<int>& nvrtc_archs,
                                                    const std::vector<int>& known_archs);
// The toolkit headers NVRTC compiles kernels against (`toolkit_cuda_version`: include/cuda.h's
// CUDA_VERSION) are of another major version than NVRTC: <cuda_fp16.h>, CCCL and the rest may not
// compile, or compile to something else.
std::optional<Problem> check_toolkit_headers_match(int toolkit_cuda_version, int nvrtc_cuda_version,
                                                   const std::string& toolkit_root);
// An architecture `nvrtc_archs` (nvrtcGetSupportedArchs) lacks: why NVRTC cannot target it, and
// what to do. nullopt when it can.
std::optional<std::string> arch_unsupported_by_nvrtc(int arch, int nvrtc_cuda_version,
                                                     const std::vector<int>& nvrtc_archs);
// CUDA_VERSION as include/cuda.h under `toolkit_root` defines it; 0 when it cannot tell.
int toolkit_cuda_version(const std::string& toolkit_root);

// The folders the dynamic loader searches: $LD_LIBRARY_PATH, /etc/ld.so.conf (with its includes),
// then the system defaults. `ld_library_path` and `ld_so_conf` are parameters for tests.
std::vector<std::string> loader_search_dirs(const std::string& ld_library_path,
                                            const std::string& ld_so_conf = "/etc/ld.so.conf");

// Distinct real paths of files in `dirs` whose name is one of `file_names`.
std::vector<std::string> find_library_copies(const std::vector<std::string>& dirs,
                                             const std::vector<std::string>& file_names);

}  // namespace kiln::driver
