// A PCI function's address, domain:bus:device.function, as sysfs, CUDA and nvidia-smi spell it.
//
// Thread safety: a value type; const objects may be shared freely.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kiln::topology {

struct PciAddress {
  std::uint32_t domain = 0;
  std::uint8_t bus = 0;
  std::uint8_t device = 0;
  std::uint8_t function = 0;

  // Accepts "0000:3b:00.0" (sysfs, CUDA), "00000000:3B:00.0" (nvidia-smi, NVML) and "3b:00.0"
  // (lspci, domain 0); hex digits of either case. Empty when `text` is none of these.
  static std::optional<PciAddress> parse(std::string_view text) noexcept;
  // As parse(), but throws kiln::Error (invalid_argument) naming `text` and `what` it was meant to be.
  static PciAddress parse_or_throw(std::string_view text, std::string_view what);

  std::string to_string() const;         // "0000:3b:00.0", as sysfs and CUDA spell it
  std::string to_nvml_string() const;    // "00000000:3B:00.0", as nvidia-smi and NVML spell it

  friend auto operator<=>(const PciAddress&, const PciAddress&) = default;
};

}  // namespace kiln::topology
