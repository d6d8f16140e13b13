// An HTTP/1.1 request as kilnd's front end sees it once parsed (method, decoded path and query,
// headers, body) and the answer it writes. The transport (transport.hpp) fills the one and
// serializes the other; the API (server.cpp) works on these alone, without the I/O library's types.
//
// Thread safety: plain values.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kiln::service::http {

using Fields = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method;  // as sent: "GET", "POST", ...
  std::string target;  // as sent: "/v1/jobs/1?wait_ms=10"
  std::string path;    // the target's path, percent-decoded (bytes, not necessarily UTF-8)
  Fields query;        // the target's query, split at '&' and '=', percent-decoded, '+' as space
  Fields headers;      // as sent, in order
  std::string body;    // decoded (chunks joined, gzip/deflate inflated)
  unsigned version = 11;  // 10 or 11
  std::string request_id; // the client's X-Request-Id when valid, else one the transport made (request_id.hpp)
  std::chrono::steady_clock::time_point read_at{};  // when the transport had all of it, before the hand-off

  // The first header of that name (case-insensitive), or "" when there is none.
  std::string_view header_value(std::string_view name) const noexcept;
  bool has_param(std::string_view name) const noexcept;
  // The first query parameter of that name, or "" when there is none.
  std::string_view param_value(std::string_view name) const noexcept;
};

struct Response {
  int status = 200;
  Fields headers;            // besides Content-Type, Content-Length and Connection
  std::string content_type;  // empty with an empty body
  std::string body;
  bool close = false;        // the connection ends after this answer

  void set_header(std::string name, std::string value);
  void set_content(std::string content, std::string type);
};

// Splits a request target into its path and query, percent-decoded (a malformed %-escape is kept
// as sent).
void split_target(std::string_view target, std::string& path, Fields& query);

// The answer as bytes on the wire: status line, headers, Content-Length, and the body unless
// `head_only` (an answer to HEAD).
std::string serialize(const Response& response, bool head_only);

// RFC 9110's reason phrase for a status ("Not Found"), "Unknown" for one it does not list.
std::string_view reason_phrase(int status) noexcept;

bool equals_ignoring_case(std::string_view a, std::string_view b) noexcept;

}  // namespace kiln::service::http
