// Launch priorities. Three levels are enough to express "interactive", "normal" and "batch"; the
// scheduler ages waiting jobs upward so a low-priority job cannot wait forever.
//
// Thread safety: plain values and pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace kiln::service {

enum class Priority : std::uint8_t { high = 0, normal = 1, low = 2 };
inline constexpr std::size_t kPriorityCount = 3;

std::string_view to_string(Priority priority) noexcept;  // "high", "normal", "low"
std::optional<Priority> parse_priority(std::string_view text) noexcept;

}  // namespace kiln::service
