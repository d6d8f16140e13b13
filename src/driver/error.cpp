#include "kiln/driver/error.hpp"

#include <algorithm>
#include <charconv>
#include <string>

namespace kiln {

std::string_view to_string(Domain domain) noexcept {
  switch (domain) {
    case Domain::driver: return "driver";
    case Domain::nvrtc: return "nvrtc";
    case Domain::nvml: return "nvml";
    case Domain::kiln: return "kiln";
    case Domain::nvjitlink: return "nvjitlink";
  }
  return "unknown";
}

const ErrorInfo* find_error(Domain domain, int code) noexcept {
  for (const ErrorInfo& e : error_table())
    if (e.domain == domain && e.code == code) return &e;
  return nullptr;
}

const ErrorInfo* find_error(std::string_view name) noexcept {
  for (const ErrorInfo& e : error_table())
    if (e.name == name) return &e;
  return nullptr;
}

namespace {

std::string build_message(Domain domain, int code, const ErrorInfo* info, const std::string& call,
                          const std::string& detail, const std::source_location& where) {
  std::string m;
  if (!call.empty()) m += call + " failed: ";
  if (info) {
    m += std::string(info->name) + " (" + std::to_string(code) + "): " + std::string(info->description);
  } else {
    m += "unknown " + std::string(to_string(domain)) + " error " + std::to_string(code) +
         " (newer than kiln's table)";
  }
  if (!detail.empty()) m += "\n" + detail;
  if (info && !info->hint.empty()) m += "\nHint: " + std::string(info->hint);
  if (info && info->sticky)
    m += "\nThis error is sticky: the CUDA context is unusable; only a new process recovers.";
  m += "\n[at " + std::string(where.file_name()) + ":" + std::to_string(where.line()) + "]";
  return m;
}

}  // namespace

Error::Error(Domain domain, int code, std::string call, std::string detail, std::source_location where)
    : domain_(domain),
      code_(code),
      info_(find_error(domain, code)),
      call_(std::move(call)),
      detail_(std::move(detail)),
      where_(where),
      message_(build_message(domain_, code_, info_, call_, detail_, where_)) {}

Error::Error(Errc code, std::string detail, std::source_location where)
    : Error(Domain::kiln, static_cast<int>(code), {}, std::move(detail), where) {}

std::string_view Error::name() const noexcept { return info_ ? info_->name : "UNKNOWN"; }
std::string_view Error::description() const noexcept { return info_ ? info_->description : ""; }
std::string_view Error::hint() const noexcept { return info_ ? info_->hint : ""; }
bool Error::sticky() const noexcept { return info_ && info_->sticky; }

std::vector<const ErrorInfo*> lookup_errors(std::string_view text) {
  std::vector<const ErrorInfo*> found;
  auto parse_int = [](std::string_view s, int& out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size() && !s.empty();
  };
  if (const ErrorInfo* e = find_error(text)) return {e};
  // Names are matched case-insensitively too: "cuda_error_illegal_address".
  for (const ErrorInfo& e : error_table()) {
    if (std::ranges::equal(e.name, text, [](char a, char b) {
          return std::toupper(static_cast<unsigned char>(a)) == std::toupper(static_cast<unsigned char>(b));
        }))
      return {&e};
  }
  std::optional<Domain> domain;
  if (auto colon = text.find(':'); colon != std::string_view::npos) {
    std::string_view prefix = text.substr(0, colon);
    for (Domain d : {Domain::driver, Domain::nvrtc, Domain::nvml, Domain::kiln, Domain::nvjitlink})
      if (prefix == to_string(d) || (d == Domain::driver && prefix == "cuda")) domain = d;
    if (!domain) return found;
    text = text.substr(colon + 1);
  }
  int code = 0;
  if (!parse_int(text, code)) return found;
  for (const ErrorInfo& e : error_table())
    if (e.code == code && (!domain || e.domain == *domain)) found.push_back(&e);
  return found;
}

}  // namespace kiln
