#include "kiln/service/priority.hpp"

namespace kiln::service {

std::string_view to_string(Priority priority) noexcept {
  switch (priority) {
    case Priority::high: return "high";
    case Priority::normal: return "normal";
    case Priority::low: return "low";
  }
  return "unknown";
}

std::optional<Priority> parse_priority(std::string_view text) noexcept {
  if (text == "high") return Priority::high;
  if (text == "normal") return Priority::normal;
  if (text == "low") return Priority::low;
  return std::nullopt;
}

}  // namespace kiln::service
