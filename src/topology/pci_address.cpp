#include "kiln/topology/pci_address.hpp"

#include <charconv>
#include <cstdio>

#include "kiln/driver/error.hpp"

namespace kiln::topology {
namespace {

// Parses `text` as min_digits..max_digits hex digits, nothing else, into `out`.
bool parse_hex(std::string_view text, std::size_t min_digits, std::size_t max_digits, std::uint32_t& out) {
  if (text.size() < min_digits || text.size() > max_digits) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, 16);
  return ec == std::errc{} && end == text.data() + text.size();
}

}  // namespace

std::optional<PciAddress> PciAddress::parse(std::string_view text) noexcept {
  // [domain:]bus:device.function
  const auto dot = text.rfind('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const auto last_colon = text.rfind(':', dot);
  if (last_colon == std::string_view::npos) return std::nullopt;
  const auto first_colon = text.rfind(':', last_colon == 0 ? 0 : last_colon - 1);
  const bool has_domain = first_colon != std::string_view::npos && first_colon < last_colon;
  std::uint32_t domain = 0, bus = 0, device = 0, function = 0;
  if (has_domain && !parse_hex(text.substr(0, first_colon), 4, 8, domain)) return std::nullopt;
  const auto bus_start = has_domain ? first_colon + 1 : 0;
  if (!parse_hex(text.substr(bus_start, last_colon - bus_start), 2, 2, bus)) return std::nullopt;
  if (!parse_hex(text.substr(last_colon + 1, dot - last_colon - 1), 2, 2, device) || device > 0x1f)
    return std::nullopt;
  if (!parse_hex(text.substr(dot + 1), 1, 1, function) || function > 7) return std::nullopt;
  return PciAddress{domain, static_cast<std::uint8_t>(bus), static_cast<std::uint8_t>(device),
                    static_cast<std::uint8_t>(function)};
}

PciAddress PciAddress::parse_or_throw(std::string_view text, std::string_view what) {
  if (auto a = parse(text)) return *a;
  throw Error(Errc::invalid_argument, std::string(what) + " \"" + std::string(text) +
                                          "\" is not a PCI address (expected domain:bus:device.function, "
                                          "e.g. 0000:3b:00.0)");
}

std::string PciAddress::to_string() const {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.%x", domain, bus, device, function);
  return buf;
}

std::string PciAddress::to_nvml_string() const {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08X:%02X:%02X.%X", domain, bus, device, function);
  return buf;
}

}  // namespace kiln::topology
