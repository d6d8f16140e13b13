// Built twice: into kiln_service, and alone into the fuzz target (by clang), so this file uses
// nothing of kiln but plain values.
#include "detail/routes.hpp"

#include <charconv>

namespace kiln::service::detail {

namespace {

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

bool is_name_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '.' || c == '-';
}

// Does `path` match `pattern`? `segment` receives the {id} (digits) or {name} segment's text.
bool matches(std::string_view pattern, std::string_view path, std::string_view& segment) {
  constexpr std::string_view kId = "{id}", kName = "{name}";
  std::size_t at = pattern.find(kId);
  std::string_view placeholder = kId;
  if (at == std::string_view::npos) {
    at = pattern.find(kName);
    placeholder = kName;
  }
  if (at == std::string_view::npos) return pattern == path;
  if (path.substr(0, at) != pattern.substr(0, at)) return false;
  std::size_t end = at;
  const bool name = placeholder == kName;
  while (end < path.size() && (name ? is_name_char(path[end]) : is_digit(path[end]))) ++end;
  if (end == at || (name && (end - at > 64 || path[at] == '.'))) return false;
  if (path.substr(end) != pattern.substr(at + placeholder.size())) return false;
  segment = path.substr(at, end - at);
  return true;
}

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool equals_ci(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) noexcept {
  return s.size() >= prefix.size() && equals_ci(s.substr(0, prefix.size()), prefix);
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// RFC 9110 5.6.2: token = 1*tchar.
bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c);
    if (!alnum && std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) return false;
  }
  return true;
}

}  // namespace

std::optional<std::uint64_t> parse_id(std::string_view digits) noexcept {
  // 2^64-1 has 20 digits. Longer text is refused even when it is zeros in front of a small number
  // (no id has them).
  if (digits.empty() || digits.size() > 20) return std::nullopt;
  for (char c : digits)
    if (!is_digit(c)) return std::nullopt;
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return value;
}

RouteMatch match_route(std::string_view method, std::string_view path) {
  if (method == "HEAD") method = "GET";
  RouteMatch out;
  for (std::size_t i = 0; i < kRouteTable.size(); ++i) {
    const RouteSpec& route = kRouteTable[i];
    std::string_view segment;
    if (!matches(route.path, path, segment)) continue;
    if (route.method != method) {
      if (out.allowed.find(route.method) == std::string::npos)
        out.allowed += (out.allowed.empty() ? "" : ", ") + std::string(route.method);
      out.result = RouteResult::wrong_method;
      continue;
    }
    RouteMatch found;
    found.result = RouteResult::found;
    found.index = i;
    found.has_id = route.path.find("{id}") != std::string_view::npos;
    if (found.has_id) {
      found.id_text = segment;
      found.id = parse_id(segment);
    } else {
      found.name = segment;
    }
    return found;
  }
  return out;
}

std::string_view id_noun(const RouteSpec& route) noexcept {
  if (route.path.find("{id}") == std::string_view::npos) return "";
  if (route.path.rfind("/v1/kernels/", 0) == 0) return "kernel";
  if (route.path.rfind("/v1/buffers/", 0) == 0) return "buffer";
  if (route.path.rfind("/v1/jobs/", 0) == 0) return "job";
  if (route.path.rfind("/v1/shm/", 0) == 0) return "shared memory region";
  return "resource";
}

std::optional<FramingError> check_framing(std::string_view method, HeaderList headers, Framing& framing) {
  framing = {};
  std::size_t lengths = 0, encodings = 0;
  std::string_view length_text, encoding;
  bool multipart = false;
  for (const auto& [name, value] : headers) {
    if (!is_token(name)) return FramingError{400, "a header name must be a token (no whitespace before the colon)"};
    if (equals_ci(name, "Content-Length")) {
      ++lengths;
      length_text = trim(value);
    } else if (equals_ci(name, "Transfer-Encoding")) {
      ++encodings;
      encoding = trim(value);
    } else if (equals_ci(name, "Content-Type")) {
      multipart = multipart || starts_with_ci(trim(value), "multipart/");
    }
  }
  if (lengths > 1) return FramingError{400, "the request has " + std::to_string(lengths) + " Content-Length headers; send one"};
  if (encodings > 1) return FramingError{400, "the request has several Transfer-Encoding headers"};
  if (lengths == 1 && encodings == 1)
    return FramingError{400, "the request has both Content-Length and Transfer-Encoding; send one"};
  if (encodings == 1) {
    if (!equals_ci(encoding, "chunked"))
      return FramingError{400, "Transfer-Encoding must be 'chunked' (kilnd decodes no other transfer coding)"};
    framing.chunked = true;
  }
  if (lengths == 1) {
    framing.content_length = parse_id(length_text);
    if (!framing.content_length)
      return FramingError{400, "Content-Length must be a decimal number of at most 20 digits"};
  }
  const bool bodiless = method == "GET" || method == "HEAD";
  if (bodiless && framing.has_body())
    return FramingError{400, std::string(method) + " requests carry no body here"};
  if (multipart && framing.has_body())
    return FramingError{415, "multipart bodies are not accepted: send JSON (application/json), or the raw bytes for uploads"};
  return std::nullopt;
}

}  // namespace kiln::service::detail
