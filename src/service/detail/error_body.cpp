// Built twice: into kiln_service, and alone into the fuzz target (by clang), so this file uses
// nothing of kiln but plain values.
#include "detail/error_body.hpp"

namespace kiln::service::detail {

namespace {

using nlohmann::json;

constexpr std::string_view kUnrenderable =
    R"({"error":{"code":"internal","message":"the error could not be rendered"}})";

// The length of the valid UTF-8 sequence starting at s[i], or 0 when s[i] does not start one.
std::size_t sequence_length(std::string_view s, std::size_t i) noexcept {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c == 0xE0) n = 3, lo = 0xA0;
  else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) n = 3;
  else if (c == 0xED) n = 3, hi = 0x9F;  // no surrogates
  else if (c == 0xF0) n = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) n = 4;
  else if (c == 0xF4) n = 4, hi = 0x8F;  // nothing above U+10FFFF
  else return 0;
  if (i + n > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  return n;
}

}  // namespace

bool is_valid_utf8(std::string_view bytes) noexcept {
  for (std::size_t i = 0; i < bytes.size();) {
    const std::size_t n = sequence_length(bytes, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string printable(std::string_view bytes, std::size_t max_bytes) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(std::min(bytes.size(), max_bytes) + 3);
  for (std::size_t i = 0; i < bytes.size();) {
    const std::size_t n = sequence_length(bytes, i);
    const std::size_t width = n == 0 ? 4 : n;
    if (out.size() + width > max_bytes) {
      out += "...";
      break;
    }
    if (n == 0) {
      const auto c = static_cast<unsigned char>(bytes[i]);
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
      i += 1;
    } else {
      out.append(bytes.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string error_body(std::string_view code, std::string_view message, const json& extra) noexcept {
  try {
    json error = json::object();
    error["code"] = printable(code, 64);
    error["message"] = printable(message);
    if (extra.is_object())
      for (const auto& [key, value] : extra.items())
        if (key != "code" && key != "message") error[key] = value;
    return json{{"error", std::move(error)}}.dump(-1, ' ', false, json::error_handler_t::replace);
  } catch (...) {
    return std::string(kUnrenderable);
  }
}

std::string json_text(const json& value) noexcept {
  try {
    return value.dump(-1, ' ', false, json::error_handler_t::replace);
  } catch (...) {
    return std::string(kUnrenderable);
  }
}

std::string_view status_code_name(int status) noexcept {
  switch (status) {
    case 400: return "bad_request";
    case 401: return "unauthorized";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 411: return "length_required";
    case 413: return "payload_too_large";
    case 414: return "uri_too_long";
    case 415: return "unsupported_media_type";
    case 416: return "range_not_satisfiable";
    case 429: return "too_many_requests";
    case 503: return "unavailable";
    default: return status >= 500 ? "internal" : "error";
  }
}

}  // namespace kiln::service::detail
