#include "http/message.hpp"

#include <charconv>

namespace kiln::service::http {

namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX escapes decoded; '+' as a space when `plus_is_space`. A malformed escape is kept as sent.
void percent_decode(std::string_view in, std::string& out, bool plus_is_space) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      const int hi = i + 1 < in.size() ? hex_value(in[i + 1]) : -1;
      const int lo = i + 2 < in.size() ? hex_value(in[i + 2]) : -1;
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
}

}  // namespace

bool equals_ignoring_case(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view Request::header_value(std::string_view name) const noexcept {
  for (const auto& [n, v] : headers)
    if (equals_ignoring_case(n, name)) return v;
  return {};
}

bool Request::has_param(std::string_view name) const noexcept {
  for (const auto& [n, v] : query)
    if (n == name) return true;
  return false;
}

std::string_view Request::param_value(std::string_view name) const noexcept {
  for (const auto& [n, v] : query)
    if (n == name) return v;
  return {};
}

void Response::set_header(std::string name, std::string value) {
  for (auto& [n, v] : headers)
    if (equals_ignoring_case(n, name)) {
      v = std::move(value);
      return;
    }
  headers.emplace_back(std::move(name), std::move(value));
}

void Response::set_content(std::string content, std::string type) {
  body = std::move(content);
  content_type = std::move(type);
}

void split_target(std::string_view target, std::string& path, Fields& query) {
  const std::size_t mark = target.find('?');
  percent_decode(target.substr(0, mark), path, /*plus_is_space=*/false);
  query.clear();
  if (mark == std::string_view::npos) return;
  std::string_view rest = target.substr(mark + 1);
  while (!rest.empty()) {
    const std::size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;
    const std::size_t eq = pair.find('=');
    std::string name, value;
    percent_decode(pair.substr(0, eq), name, true);
    if (eq != std::string_view::npos) percent_decode(pair.substr(eq + 1), value, true);
    query.emplace_back(std::move(name), std::move(value));
  }
}

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
  }
}

std::string serialize(const Response& r, bool head_only) {
  std::string out;
  out.reserve(128 + r.body.size());
  char number[24];
  out += "HTTP/1.1 ";
  out.append(number, std::to_chars(number, number + sizeof number, r.status).ptr);
  out += ' ';
  out += reason_phrase(r.status);
  out += "\r\n";
  for (const auto& [name, value] : r.headers) {
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  // 1xx and 204 answers have no body and no length (RFC 9110 8.6).
  const bool bodiless = r.status < 200 || r.status == 204;
  if (!bodiless) {
    if (!r.content_type.empty()) {
      out += "Content-Type: ";
      out += r.content_type;
      out += "\r\n";
    }
    out += "Content-Length: ";
    out.append(number, std::to_chars(number, number + sizeof number, r.body.size()).ptr);
    out += "\r\n";
  }
  if (r.close) out += "Connection: close\r\n";
  out += "\r\n";
  if (!bodiless && !head_only) out += r.body;
  return out;
}

}  // namespace kiln::service::http
