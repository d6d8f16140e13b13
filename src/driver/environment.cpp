#include "kiln/driver/environment.hpp"

#include <sys/utsname.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string_view>

#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/driver/nvjitlink_api.hpp"
#include "kiln/driver/nvml_api.hpp"
#include "kiln/driver/nvrtc_api.hpp"
#include "kiln/version.hpp"

namespace kiln::driver {
namespace {

namespace fs = std::filesystem;

LibraryReport report_of(const LoadedLibrary& lib) {
  return {lib.loaded, lib.path, lib.version, lib.failure, lib.tried, lib.copies};
}

std::string hint_of(Domain domain, int code) {
  const ErrorInfo* e = find_error(domain, code);
  return e ? std::string(e->hint) : std::string();
}

GpuReport probe_gpu(const CudaApi& cu, int ordinal, const std::vector<int>& archs) {
  GpuReport g;
  g.ordinal = ordinal;
  CUdevice dev{};
  if (cu.cuDeviceGet(&dev, ordinal) != CUDA_SUCCESS) return g;
  char name[256] = {};
  cu.cuDeviceGetName(name, sizeof name, dev);
  g.name = name;
  CUuuid uuid{};
  if (cu.cuDeviceGetUuid(&uuid, dev) == CUDA_SUCCESS) g.uuid = format_uuid(uuid);
  char bus[32] = {};
  if (cu.cuDeviceGetPCIBusId(bus, sizeof bus, dev) == CUDA_SUCCESS) g.pci_bus_id = bus;
  cu.cuDeviceGetAttribute(&g.cc_major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
  cu.cuDeviceGetAttribute(&g.cc_minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
  cu.cuDeviceGetAttribute(&g.multiprocessors, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev);
  size_t total = 0;
  if (cu.cuDeviceTotalMem(&total, dev) == CUDA_SUCCESS) g.memory_total = total;
  // Free memory needs a context: borrow the primary one, leave the thread as it was.
  CUcontext primary = nullptr, previous = nullptr;
  if (cu.cuDevicePrimaryCtxRetain(&primary, dev) == CUDA_SUCCESS) {
    cu.cuCtxGetCurrent(&previous);
    if (cu.cuCtxSetCurrent(primary) == CUDA_SUCCESS) {
      size_t free = 0;
      if (cu.cuMemGetInfo(&free, &total) == CUDA_SUCCESS) g.memory_free = free;
      cu.cuCtxSetCurrent(previous);
    }
    cu.cuDevicePrimaryCtxRelease(dev);
  }
  g.nvrtc_can_compile =
      std::find(archs.begin(), archs.end(), g.cc_major * 10 + g.cc_minor) != archs.end();
  if (const NvmlApi* nvml = nvml_state().api; nvml && !g.uuid.empty()) {
    nvml_device handle = nullptr;
    unsigned index = 0;
    if (nvml->nvmlDeviceGetHandleByUUID(g.uuid.c_str(), &handle) == 0 && nvml->nvmlDeviceGetIndex(handle, &index) == 0)
      g.nvml_index = static_cast<int>(index);
  }
  return g;
}

void add_copies_problem(EnvironmentReport& r, const LibraryReport& lib, const char* id,
                        const char* library) {
  if (lib.copies.size() < 2) return;
  std::string list;
  for (const auto& c : lib.copies) list += "\n  " + c;
  r.problems.push_back(
      {id,
       std::string("Several copies of ") + library + " are on the loader's path:" + list +
           "\nLoaded: " + (lib.found ? lib.path : "none"),
       "Mismatched copies are the usual cause of version errors in containers. Remove the stale ones "
       "or put the right folder first in LD_LIBRARY_PATH."});
}

}  // namespace

std::optional<Problem> check_version_alignment(int driver_cuda_version, int nvrtc_cuda_version) {
  if (driver_cuda_version <= 0 || nvrtc_cuda_version <= 0) return std::nullopt;
  if (nvrtc_cuda_version <= driver_cuda_version) return std::nullopt;
  return Problem{
      "nvrtc_newer_than_driver",
      "NVRTC " + format_cuda_version(nvrtc_cuda_version) + " is newer than the driver, which supports CUDA " +
          format_cuda_version(driver_cuda_version) +
          ": PTX from this NVRTC will not load (CUDA_ERROR_UNSUPPORTED_PTX_VERSION).",
      "Compile to CUBIN for the GPU's exact architecture (kiln's default), use an NVRTC no newer "
      "than CUDA " + format_cuda_version(driver_cuda_version) +
          " (KILN_NVRTC_PATH), or update the driver."};
}

namespace {

std::string arch_list(const std::vector<int>& archs) {
  std::string out;
  for (int a : archs) out += (out.empty() ? "sm_" : " sm_") + std::to_string(a);
  return out;
}

}  // namespace

std::optional<std::string> arch_unsupported_by_nvrtc(int arch, int nvrtc_cuda_version,
                                                     const std::vector<int>& nvrtc_archs) {
  if (nvrtc_archs.empty() || std::find(nvrtc_archs.begin(), nvrtc_archs.end(), arch) != nvrtc_archs.end())
    return std::nullopt;
  const bool newer = arch > nvrtc_archs.back();
  return "NVRTC " + format_cuda_version(nvrtc_cuda_version) + " cannot target sm_" + std::to_string(arch) +
         " (it targets sm_" + std::to_string(nvrtc_archs.front()) + " to sm_" + std::to_string(nvrtc_archs.back()) +
         "): " +
         (newer ? "the architecture is newer than this NVRTC. Use the NVRTC of a toolkit that knows it (CUDA_HOME "
                  "or KILN_NVRTC_PATH), or compile PTX for an older virtual architecture (compute_" +
                      std::to_string(nvrtc_archs.back()) + ") for the driver to JIT-compile"
                : "this NVRTC no longer targets it; use an older toolkit's NVRTC (KILN_NVRTC_PATH)");
}

std::optional<Problem> check_nvrtc_older_than_build(int built_cuda_version, int nvrtc_cuda_version,
                                                    const std::vector<int>& nvrtc_archs,
                                                    const std::vector<int>& known_archs) {
  if (built_cuda_version <= 0 || nvrtc_cuda_version <= 0 || nvrtc_cuda_version / 1000 >= built_cuda_version / 1000)
    return std::nullopt;
  std::vector<int> missing;
  for (int a : known_archs)
    if (!nvrtc_archs.empty() && a > nvrtc_archs.back()) missing.push_back(a);
  std::string message = "NVRTC " + format_cuda_version(nvrtc_cuda_version) +
                        " is older than the CUDA kiln was built with (" + format_cuda_version(built_cuda_version) + ")";
  message += missing.empty() ? "." : ": it cannot target " + arch_list(missing) +
                                         ", so kernels for those GPUs are refused (compile PTX for an older "
                                         "virtual architecture for the driver to JIT-compile, or use a newer NVRTC).";
  message += " Its cache entries are kept apart from another NVRTC's (the cache key holds NVRTC's version).";
  return Problem{"nvrtc_older_than_build", std::move(message),
                 "To use the toolkit kiln was built with, unset KILN_NVRTC_PATH or set CUDA_HOME to it; to keep "
                 "this NVRTC, this is fine for the architectures it lists."};
}

std::optional<Problem> check_toolkit_headers_match(int toolkit_cuda_version, int nvrtc_cuda_version,
                                                   const std::string& toolkit_root) {
  if (toolkit_cuda_version <= 0 || nvrtc_cuda_version <= 0 || toolkit_cuda_version / 1000 == nvrtc_cuda_version / 1000)
    return std::nullopt;
  return Problem{"toolkit_headers_differ",
                 "The toolkit headers at " + toolkit_root + " are CUDA " + format_cuda_version(toolkit_cuda_version) +
                     ", NVRTC is " + format_cuda_version(nvrtc_cuda_version) +
                     ": kernels that include <cuda_fp16.h>, CUB or other toolkit headers are compiled against "
                     "another toolkit's headers, which may not compile with this NVRTC.",
                 "Set CUDA_HOME to the toolkit this NVRTC comes from (its include/ folder), or use that "
                 "toolkit's NVRTC (KILN_NVRTC_PATH)."};
}

int toolkit_cuda_version(const std::string& toolkit_root) {
  if (toolkit_root.empty()) return 0;
  std::ifstream in(fs::path(toolkit_root) / "include" / "cuda.h");
  std::string line;
  for (int n = 0; n < 400 && std::getline(in, line); ++n) {
    constexpr std::string_view kDefine = "#define CUDA_VERSION ";
    if (line.rfind(kDefine, 0) == 0) return std::atoi(line.c_str() + kDefine.size());
  }
  return 0;
}

EnvironmentReport probe_environment() {
  EnvironmentReport r;
  r.kiln_version = KILN_VERSION;
  r.built_cuda_version = built_cuda_version();
  if (const char* v = std::getenv("CUDA_DEVICE_ORDER")) r.cuda_device_order = v;
  if (const char* v = std::getenv("CUDA_VISIBLE_DEVICES")) {
    r.cuda_visible_devices = v;
    r.cuda_visible_devices_set = true;
  }
  utsname u{};
  if (uname(&u) == 0) {
    r.os = std::string(u.sysname) + " " + u.release;
    r.arch = u.machine;
  }

  // NVRTC and the toolkit first: they matter with or without a driver.
  r.nvrtc = report_of(nvrtc_info());
  if (r.nvrtc.found) {
    r.nvrtc_archs = nvrtc_library().supported_archs;
  } else {
    r.problems.push_back({"no_nvrtc", r.nvrtc.failure, hint_of(Domain::kiln, int(Errc::nvrtc_not_found))});
  }
  add_copies_problem(r, r.nvrtc, "several_nvrtc", "NVRTC");

  const NvrtcSearch search = NvrtcSearch::from_environment();
  if (!search.toolkit_roots.empty()) {
    r.toolkit_root = search.toolkit_roots.front();
  } else if (r.nvrtc.found) {
    // <root>/lib64/libnvrtc.so.13 or <root>/targets/<arch>/lib/libnvrtc.so.13
    fs::path lib = fs::path(r.nvrtc.path).parent_path();
    r.toolkit_root = (lib.parent_path().filename() == "x86_64-linux" ? lib.parent_path().parent_path().parent_path()
                                                                     : lib.parent_path()).string();
  }
  std::error_code ec;
  r.toolkit_include = !r.toolkit_root.empty() && fs::exists(fs::path(r.toolkit_root) / "include" / "cuda.h", ec);
  r.toolkit_cccl = !r.toolkit_root.empty() && fs::is_directory(fs::path(r.toolkit_root) / "include" / "cccl", ec);
  if (!r.toolkit_include)
    r.problems.push_back({"no_toolkit_headers",
                          "No CUDA toolkit headers found" +
                              (r.toolkit_root.empty() ? std::string() : " under " + r.toolkit_root + "/include"),
                          "Kernels that include <cuda_fp16.h> or CUB need the toolkit's headers: set CUDA_HOME "
                          "to the toolkit root (the folder holding include/cuda.h)."});
  else if (!r.toolkit_cccl)
    r.problems.push_back({"no_cccl_headers", "The toolkit at " + r.toolkit_root + " has no include/cccl folder",
                          "CUDA 13 keeps CUB, Thrust and libcu++ in include/cccl; install the toolkit's CCCL "
                          "package, or point CUDA_HOME at a complete toolkit."});

  if (r.nvrtc.found) {
    const int nvrtc_version = nvrtc_library().version.as_cuda_version();
    // The architectures of the GPUs kiln's build knows of (those of its toolkit's NVRTC, and newer).
    static const std::vector<int> known{75, 80, 86, 87, 89, 90, 100, 103, 110, 120, 121};
    if (auto p = check_nvrtc_older_than_build(r.built_cuda_version, nvrtc_version, r.nvrtc_archs, known))
      r.notes.push_back(std::move(*p));
    if (auto p = check_toolkit_headers_match(toolkit_cuda_version(r.toolkit_root), nvrtc_version, r.toolkit_root))
      r.notes.push_back(std::move(*p));
  }

  r.nvjitlink = report_of(nvjitlink_info());
  if (!r.nvjitlink.found) {
    r.notes.push_back({"no_nvjitlink", r.nvjitlink.failure + " Compiling and launching work; linking does not.",
                       hint_of(Domain::kiln, int(Errc::nvjitlink_not_found))});
  } else if (r.nvrtc.found) {
    if (auto mismatch = lto_version_mismatch(nvrtc_library().version.as_cuda_version(),
                                             nvjitlink_library().version.as_cuda_version()))
      r.notes.push_back({"nvjitlink_nvrtc_mismatch", *mismatch,
                         "Take NVRTC and nvJitLink from one toolkit: set CUDA_HOME to it, or set both "
                         "KILN_NVRTC_PATH and KILN_NVJITLINK_PATH."});
  }

  const NvmlState& nvml = nvml_state();
  r.nvml = report_of(nvml.library);

  const DriverState& d = driver_state();
  r.driver = report_of(d.library);
  if (!nvml.driver_version.empty()) r.driver.version = nvml.driver_version;
  add_copies_problem(r, r.driver, "several_libcuda", "libcuda");
  if (!d.api) {
    r.problems.push_back({"no_driver",
                          "No NVIDIA driver: " + d.library.failure +
                              ". kiln can still compile kernels (NVRTC runs on the CPU) but cannot run them.",
                          hint_of(Domain::kiln, int(Errc::driver_not_found))});
    return r;
  }
  r.driver_cuda_version = d.cuda_version;
  const ErrorInfo* init = find_error(Domain::driver, d.init_result);
  r.driver_init = init ? std::string(init->name) : std::to_string(d.init_result);
  if (d.init_result == CUDA_ERROR_STUB_LIBRARY) {
    r.problems.push_back({"stub_driver", "The loaded libcuda (" + d.library.path +
                                             ") is the toolkit's link stub, not a driver.",
                          hint_of(Domain::driver, d.init_result)});
    return r;
  }
  if (d.cuda_version < r.built_cuda_version)
    r.problems.push_back({"driver_older_than_kiln",
                          "The driver supports CUDA " + format_cuda_version(d.cuda_version) +
                              "; kiln was built for " + format_cuda_version(r.built_cuda_version) + ": " +
                              std::to_string(d.missing.size()) + " driver entry points are unavailable.",
                          "Update the driver, or build kiln against the toolkit the driver supports."});
  if (r.nvrtc.found)
    if (auto p = check_version_alignment(d.cuda_version, nvrtc_library().version.as_cuda_version()))
      r.problems.push_back(*p);
  if (d.init_result != CUDA_SUCCESS) {
    r.problems.push_back({"driver_init_failed", "cuInit(0) failed with " + r.driver_init,
                          hint_of(Domain::driver, d.init_result)});
    return r;
  }

  const CudaApi& cu = *d.api;
  int count = 0;
  cu.cuDeviceGetCount(&count);
  for (int i = 0; i < count; ++i) {
    r.gpus.push_back(probe_gpu(cu, i, r.nvrtc_archs));
    const GpuReport& g = r.gpus.back();
    if (r.nvrtc.found && !g.nvrtc_can_compile)
      r.problems.push_back({"arch_unsupported",
                            "GPU " + std::to_string(i) + " (" + g.name + ", sm_" + std::to_string(g.cc_major) +
                                std::to_string(g.cc_minor) + ") is not among NVRTC " + r.nvrtc.version +
                                "'s architectures",
                            "Use an NVRTC that supports this GPU, or compile PTX for an older virtual "
                            "architecture and let the driver JIT it."});
  }
  if (count == 0)
    r.problems.push_back({"no_gpu", "The driver is loaded but reports no GPU.",
                          hint_of(Domain::driver, CUDA_ERROR_NO_DEVICE)});
  return r;
}

}  // namespace kiln::driver
