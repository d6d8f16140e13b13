#include "kiln/jit/target.hpp"

#include <algorithm>
#include <charconv>

#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/environment.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/jit/nvrtc_facts.hpp"

namespace kiln::jit {
namespace {

std::string dotted(int arch) { return std::to_string(arch / 10) + "." + std::to_string(arch % 10); }

std::string list_archs(std::span<const int> archs) {
  std::string s;
  for (int a : archs) s += (s.empty() ? "" : ", ") + std::to_string(a);
  return s.empty() ? "none" : s;
}

// The compute capability of device `ordinal` as a number (90), from the raw driver table.
int device_arch(int ordinal) {
  const driver::CudaApi& cu = driver::cuda();
  CUdevice device = 0;
  driver::check(cu.cuDeviceGet(&device, ordinal), "cuDeviceGet");
  int major = 0, minor = 0;
  driver::check(cu.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device),
                "cuDeviceGetAttribute");
  driver::check(cu.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device),
                "cuDeviceGetAttribute");
  return major * 10 + minor;
}

Target for_ordinal(int ordinal, int arch, const NvrtcFacts& nvrtc) {
  Target t = Target::choose(arch, nvrtc, driver::driver_state().cuda_version);
  t.reason = "device " + std::to_string(ordinal) + ": " + t.reason;
  return t;
}

}  // namespace

std::string_view to_string(ImageKind kind) noexcept {
  switch (kind) {
    case ImageKind::cubin: return "cubin";
    case ImageKind::ptx: return "ptx";
    case ImageKind::ltoir: return "ltoir";
  }
  return "cubin";
}

namespace {

std::string_view arch_prefix(ImageKind kind) {
  switch (kind) {
    case ImageKind::cubin: return "sm_";
    case ImageKind::ptx: return "compute_";
    case ImageKind::ltoir: return "lto_";  // nvcc's spelling: -gencode arch=compute_90,code=lto_90
  }
  return "sm_";
}

}  // namespace

std::string Target::arch_name() const {
  return std::string(arch_prefix(kind)) + std::to_string(arch);
}

std::string Target::nvrtc_option() const {
  // NVRTC writes LTO-IR for a real architecture given -dlto (compiler.cpp adds it).
  return "--gpu-architecture=" + (kind == ImageKind::ltoir ? "sm_" + std::to_string(arch) : arch_name());
}

Target Target::for_arch(int arch, ImageKind kind) {
  if (arch <= 0) throw Error(Errc::invalid_argument, "architecture " + std::to_string(arch) + " is not positive");
  return Target{kind, arch, "requested " + std::string(arch_prefix(kind)) + std::to_string(arch)};
}

Target Target::parse(std::string_view text) {
  ImageKind kind = ImageKind::cubin;
  std::string_view digits = text;
  std::string compact;
  if (digits.starts_with("sm_")) {
    digits.remove_prefix(3);
  } else if (digits.starts_with("compute_")) {
    digits.remove_prefix(8);
    kind = ImageKind::ptx;
  } else if (digits.starts_with("lto_")) {
    digits.remove_prefix(4);
    kind = ImageKind::ltoir;
  } else if (auto dot = digits.find('.'); dot != std::string_view::npos) {
    compact = std::string(digits.substr(0, dot)) + std::string(digits.substr(dot + 1));
    digits = compact;
  }
  int arch = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), arch);
  if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty() || arch <= 0)
    throw Error(Errc::invalid_argument, "'" + std::string(text) +
                                            "' is not an architecture (expected sm_90, compute_90, lto_90, 90 or 9.0)");
  return for_arch(arch, kind);
}

Target Target::choose(int device_arch, std::span<const int> nvrtc_archs, int driver_cuda_version,
                      int nvrtc_cuda_version) {
  const std::string device = "the device's compute capability " + dotted(device_arch);
  if (std::find(nvrtc_archs.begin(), nvrtc_archs.end(), device_arch) != nvrtc_archs.end())
    return Target{ImageKind::cubin, device_arch, "CUBIN for sm_" + std::to_string(device_arch) + ": " + device +
                                                     " is among NVRTC's real architectures"};
  int best = 0;
  for (int a : nvrtc_archs)
    if (a <= device_arch) best = std::max(best, a);
  if (best == 0)
    throw Error(Errc::version_mismatch, "NVRTC cannot target " + device + ": its oldest architecture is newer (" +
                                            "NVRTC supports " + list_archs(nvrtc_archs) +
                                            "); use an older NVRTC through KILN_NVRTC_PATH");
  if (auto problem = driver::check_version_alignment(driver_cuda_version, nvrtc_cuda_version))
    throw Error(Errc::version_mismatch,
                "NVRTC does not list " + device + " (it supports " + list_archs(nvrtc_archs) +
                    "), so PTX would be needed, but " + problem->message + " " + problem->hint);
  return Target{ImageKind::ptx, best, "PTX for compute_" + std::to_string(best) + ": NVRTC does not list " +
                                          device + " (it supports " + list_archs(nvrtc_archs) +
                                          "); the driver JIT-compiles the PTX at load"};
}

Target Target::choose(int device_arch, const NvrtcFacts& nvrtc, int driver_cuda_version) {
  return choose(device_arch, nvrtc.supported_archs, driver_cuda_version, nvrtc.cuda_version());
}

Target Target::for_device(int ordinal) {
  const int arch = device_arch(ordinal);  // no driver or no device: said before NVRTC is asked
  return for_ordinal(ordinal, arch, nvrtc_facts());
}

Target Target::for_device(int ordinal, const NvrtcFacts& nvrtc) {
  return for_ordinal(ordinal, device_arch(ordinal), nvrtc);
}

}  // namespace kiln::jit
