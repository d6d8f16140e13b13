#include "kiln/topology/cpu_list.hpp"

#include <algorithm>
#include <charconv>

#include "kiln/driver/error.hpp"

namespace kiln::topology {
namespace {

[[noreturn]] void bad(std::string_view text, std::string_view why) {
  std::string message = "\"";
  message.append(text).append("\" is not a CPU list (").append(why).append(")");
  throw Error(Errc::invalid_argument, std::move(message));
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int parse_number(std::string_view whole, std::string_view s) {
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || end != s.data() + s.size() || v < 0) {
    std::string why(s);
    why.append(" is not a number");
    bad(whole, why);
  }
  return v;
}

}  // namespace

CpuList::CpuList(std::vector<int> ids) : ids_(std::move(ids)) {
  std::sort(ids_.begin(), ids_.end());
  ids_.erase(std::unique(ids_.begin(), ids_.end()), ids_.end());
}

CpuList CpuList::parse(std::string_view text) {
  const std::string_view body = trim(text);
  std::vector<int> ids;
  std::size_t pos = 0;
  while (pos < body.size()) {
    auto comma = body.find(',', pos);
    if (comma == std::string_view::npos) comma = body.size();
    const std::string_view item = body.substr(pos, comma - pos);
    if (auto dash = item.find('-'); dash != std::string_view::npos) {
      const int first = parse_number(text, item.substr(0, dash));
      const int last = parse_number(text, item.substr(dash + 1));
      if (last < first) bad(text, std::string("range ").append(item).append(" runs backwards"));
      if (last - first > 1 << 20) bad(text, std::string("range ").append(item).append(" is implausibly large"));
      for (int i = first; i <= last; ++i) ids.push_back(i);
    } else {
      ids.push_back(parse_number(text, item));
    }
    pos = comma + 1;
  }
  return CpuList(std::move(ids));
}

CpuList CpuList::parse_mask(std::string_view text) {
  std::string digits;
  for (char c : trim(text))
    if (c != ',') digits.push_back(c);
  if (digits.empty()) bad(text, "empty mask");
  std::vector<int> ids;
  const int n = static_cast<int>(digits.size());
  for (int i = 0; i < n; ++i) {
    const char c = digits[static_cast<std::size_t>(n - 1 - i)];  // least significant nibble first
    int nibble = 0;
    if (c >= '0' && c <= '9') nibble = c - '0';
    else if (c >= 'a' && c <= 'f') nibble = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') nibble = c - 'A' + 10;
    else bad(text, "not a hex mask");
    for (int bit = 0; bit < 4; ++bit)
      if (nibble & (1 << bit)) ids.push_back(i * 4 + bit);
  }
  return CpuList(std::move(ids));
}

bool CpuList::contains(int id) const noexcept { return std::binary_search(ids_.begin(), ids_.end(), id); }

bool CpuList::intersects(const CpuList& other) const noexcept {
  auto a = ids_.begin();
  auto b = other.ids_.begin();
  while (a != ids_.end() && b != other.ids_.end()) {
    if (*a == *b) return true;
    if (*a < *b) ++a; else ++b;
  }
  return false;
}

CpuList CpuList::intersection(const CpuList& other) const {
  std::vector<int> out;
  std::set_intersection(ids_.begin(), ids_.end(), other.ids_.begin(), other.ids_.end(), std::back_inserter(out));
  return CpuList(std::move(out));
}

std::string CpuList::to_string() const {
  std::string out;
  for (std::size_t i = 0; i < ids_.size();) {
    std::size_t j = i;
    while (j + 1 < ids_.size() && ids_[j + 1] == ids_[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(ids_[i]);
    if (j > i) out += '-' + std::to_string(ids_[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace kiln::topology
