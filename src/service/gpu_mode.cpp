#include "kiln/service/gpu_mode.hpp"

namespace kiln::service {

std::string_view to_string(GpuMode mode) noexcept {
  return mode == GpuMode::concurrent ? "concurrent" : "isolation";
}

std::optional<GpuMode> parse_gpu_mode(std::string_view text) noexcept {
  if (text == "isolation") return GpuMode::isolation;
  if (text == "concurrent") return GpuMode::concurrent;
  return std::nullopt;
}

}  // namespace kiln::service
