// kilnd's routes and the checks a request passes before any handler runs: which route a method and
// (decoded) path name, the {id} in it, and whether the request's framing headers (Content-Length,
// Transfer-Encoding) say unambiguously where its body ends. Nothing here knows the HTTP library:
// the front end hands in the method, the path and the headers, and turns a refusal into an answer.
//
// Built twice: into kiln_service and alone into the fuzz target (by clang), so it uses nothing of
// kiln's compiled code.
//
// Thread safety: pure functions over values; the table is constant.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace kiln::service::detail {

enum class BodyKind {
  none,   // a body is not read (GET; DELETE ignores one)
  json,   // a JSON object, at most max_json_bytes
  bytes,  // raw bytes, at most max_body_bytes (uploads)
};

struct RouteSpec {
  std::string_view method;  // as the OpenAPI document spells it
  std::string_view path;    // "/v1/kernels/{id}"; {id} is a decimal number, {name} 1-64 of [A-Za-z0-9_.-]
  BodyKind body;
};

inline constexpr std::array<RouteSpec, 32> kRouteTable = {{
    {"GET", "/healthz", BodyKind::none},
    {"GET", "/readyz", BodyKind::none},
    {"GET", "/metrics", BodyKind::none},
    {"POST", "/v1/kernels", BodyKind::json},
    {"GET", "/v1/kernels", BodyKind::none},
    {"GET", "/v1/kernels/{id}", BodyKind::none},
    {"DELETE", "/v1/kernels/{id}", BodyKind::none},
    {"POST", "/v1/buffers", BodyKind::json},
    {"GET", "/v1/buffers", BodyKind::none},
    {"GET", "/v1/buffers/{id}", BodyKind::none},
    {"DELETE", "/v1/buffers/{id}", BodyKind::none},
    {"PUT", "/v1/buffers/{id}/data", BodyKind::bytes},
    {"GET", "/v1/buffers/{id}/data", BodyKind::none},
    {"POST", "/v1/launches", BodyKind::json},
    {"GET", "/v1/jobs", BodyKind::none},
    {"GET", "/v1/jobs/{id}", BodyKind::none},
    {"POST", "/v1/buffers/{id}/shm", BodyKind::json},
    {"POST", "/v1/shm", BodyKind::json},
    {"GET", "/v1/shm", BodyKind::none},
    {"GET", "/v1/shm/{id}", BodyKind::none},
    {"DELETE", "/v1/shm/{id}", BodyKind::none},
    {"GET", "/v1/libraries", BodyKind::none},
    {"GET", "/", BodyKind::none},
    {"GET", "/status/app.js", BodyKind::none},
    {"GET", "/status/app.css", BodyKind::none},
    {"GET", "/v1/status", BodyKind::none},
    {"GET", "/v1/status/topology.svg", BodyKind::none},
    {"GET", "/v1/repository", BodyKind::none},
    {"GET", "/v1/repository/{name}", BodyKind::none},
    {"POST", "/v1/repository/{name}/load", BodyKind::json},
    {"POST", "/v1/repository/{name}/unload", BodyKind::json},
    {"POST", "/v1/repository/{name}/rollback", BodyKind::json},
}};

enum class RouteResult { found, no_route, wrong_method };

struct RouteMatch {
  RouteResult result = RouteResult::no_route;
  std::size_t index = 0;            // into kRouteTable, when found
  bool has_id = false;              // the route has an {id}
  std::optional<std::uint64_t> id;  // empty beyond 2^64-1 or 20 digits (no such id can exist)
  std::string_view id_text;         // the digits as sent (a view into the path)
  std::string_view name;            // the {name} segment (a view into the path), when the route has one
  std::string allowed;              // wrong_method: the methods the path has, "GET, DELETE"
};

// HEAD is matched as GET. A path matches a route only exactly (no trailing slash); {id} is one or
// more ASCII digits, of any length.
RouteMatch match_route(std::string_view method, std::string_view path);

// 1-20 decimal digits as a number; empty for anything else or for a number above 2^64-1.
std::optional<std::uint64_t> parse_id(std::string_view digits) noexcept;

// What kind of thing the route's {id} names: "kernel", "buffer", "job" ("" without an id).
std::string_view id_noun(const RouteSpec& route) noexcept;

// A request's framing refused before its body is read: answer `status` with `message`, and close
// the connection (its body cannot be told from the next request).
struct FramingError {
  int status = 400;
  std::string message;
};

// How a request's body is delimited (RFC 9112 section 6): none, Content-Length or chunked.
struct Framing {
  bool chunked = false;
  std::optional<std::uint64_t> content_length;
  bool has_body() const noexcept { return chunked || content_length.value_or(0) > 0; }
};

using HeaderList = std::span<const std::pair<std::string_view, std::string_view>>;

// Refuses what a server must not guess at (RFC 9112 6.3, 5.1): several or malformed
// Content-Length values, Transfer-Encoding other than exactly "chunked", both at once, a header
// name that is not a token (whitespace before the colon), a body on a route that takes none
// through GET/HEAD, and multipart bodies (kilnd takes JSON and raw bytes). Header names compare
// case-insensitively.
std::optional<FramingError> check_framing(std::string_view method, HeaderList headers, Framing& framing);

}  // namespace kiln::service::detail
