// jit::Target: what NVRTC produces, a CUBIN for a real architecture (sm_90), PTX for a virtual
// one (compute_90) or LTO-IR (lto_90: NVRTC -dlto, for nvJitLink to link with -lto; see linker.hpp),
// and why that choice was made.
//
// Thread safety: a plain value; the factories read only immutable process-wide state.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace kiln::jit {

struct NvrtcFacts;  // nvrtc_facts.hpp

// The numbers are stored in cache entries: append only.
enum class ImageKind : std::uint8_t { cubin, ptx, ltoir };
inline constexpr std::uint8_t kLastImageKind = static_cast<std::uint8_t>(ImageKind::ltoir);

std::string_view to_string(ImageKind kind) noexcept;  // "cubin", "ptx", "ltoir"

struct Target {
  ImageKind kind = ImageKind::cubin;
  int arch = 90;       // compute capability as a number: 90 for 9.0, 120 for 12.0
  std::string reason;  // why this target was chosen; not part of identity

  std::string arch_name() const;          // "sm_90" (cubin), "compute_90" (ptx), "lto_90" (ltoir)
  std::string nvrtc_option() const;       // "--gpu-architecture=sm_90" (LTO-IR: sm_90 too, with -dlto)

  // Exactly the given architecture. Throws kiln::Error (Errc::invalid_argument) when arch <= 0.
  static Target for_arch(int arch, ImageKind kind = ImageKind::cubin);
  // Parses "sm_90", "compute_90", "lto_90", "90" (CUBIN) and "9.0". Throws kiln::Error naming the text.
  static Target parse(std::string_view text);

  // The best target for device `ordinal`: CUBIN for its exact architecture when NVRTC lists it,
  // else PTX for the highest architecture NVRTC supports that does not exceed the device's (the
  // driver JIT-compiles it at load). Throws kiln::Error when there is no driver or device, when
  // NVRTC supports nothing old enough, or when PTX is needed but NVRTC is newer than the driver
  // (the driver would refuse the PTX with CUDA_ERROR_UNSUPPORTED_PTX_VERSION). NVRTC's
  // architectures and version come from nvrtc_facts() (the default cache folder's record when
  // NVRTC is not loaded yet), or from the facts given.
  static Target for_device(int ordinal);
  static Target for_device(int ordinal, const NvrtcFacts& nvrtc);

  // The decision behind for_device, from plain facts, so it can be tested without a GPU.
  // Versions are CUDA versions as numbers (13000 for 13.0); 0 means unknown.
  static Target choose(int device_arch, std::span<const int> nvrtc_archs, int driver_cuda_version,
                       int nvrtc_cuda_version);
  static Target choose(int device_arch, const NvrtcFacts& nvrtc, int driver_cuda_version);

  friend bool operator==(const Target& a, const Target& b) noexcept {
    return a.kind == b.kind && a.arch == b.arch;
  }
};

}  // namespace kiln::jit
