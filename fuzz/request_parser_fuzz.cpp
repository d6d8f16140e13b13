// libFuzzer target for what kilnd does with a request before and after its handlers: any bytes,
// as any of the three JSON bodies, must be accepted or refused with a RequestError whose text is
// valid UTF-8; as a method, a path and headers, they must route, parse an id and check framing
// without throwing; and every error body rendered from any of that (and from the raw bytes
// themselves) must be valid UTF-8 JSON of the {"error": {"code", "message"}} shape. Built with
// ASan + UBSan; a crash, an exception, a hang or a leak is a finding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "detail/error_body.hpp"
#include "detail/routes.hpp"
#include "kiln/service/requests.hpp"

namespace {

using namespace kiln::service;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// A rendered error body: valid UTF-8, JSON, the documented shape.
void check_error_body(const std::string& body) {
  check(detail::is_valid_utf8(body));
  const auto parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  check(!parsed.is_discarded());
  check(parsed.contains("error") && parsed["error"]["code"].is_string() && parsed["error"]["message"].is_string());
}

void check_refusal(const RequestError& e) {
  check(!e.text().empty());  // a refusal always says why
  check(detail::is_valid_utf8(e.field) && detail::is_valid_utf8(e.message));
  check_error_body(detail::error_body("bad_request", e.text(), {{"field", e.field}}));
}

void bodies(std::string_view body) {
  const RequestLimits limits{16, 8, 256};
  auto launch = parse_launch_request(body, limits);
  if (!launch.ok()) check_refusal(launch.error());
  auto kernel = parse_kernel_request(body, limits);
  if (!kernel.ok()) check_refusal(kernel.error());
  auto buffer = parse_buffer_request(body, limits);
  if (buffer.ok()) check(buffer.value().bytes >= 1);  // bytes >= 1 is promised
  else check_refusal(buffer.error());
}

// First line: method and path; each further line "name: value" (no colon: a name alone).
void request(std::string_view text) {
  std::vector<std::string_view> lines;
  for (std::size_t start = 0; start <= text.size();) {
    const std::size_t end = std::min(text.find('\n', start), text.size());
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  const std::string_view first = lines[0];
  const std::size_t space = first.find(' ');
  const std::string_view method = first.substr(0, space);
  const std::string_view path = space == std::string_view::npos ? std::string_view{} : first.substr(space + 1);

  const detail::RouteMatch match = detail::match_route(method, path);
  if (match.result == detail::RouteResult::found) {
    check(match.index < detail::kRouteTable.size());
    const detail::RouteSpec& route = detail::kRouteTable[match.index];
    check(route.method == method || (method == "HEAD" && route.method == "GET"));
    check(match.has_id == !detail::id_noun(route).empty());
    if (match.has_id) {
      check(!match.id_text.empty());
      if (match.id) check(std::to_string(*match.id) == match.id_text || match.id_text[0] == '0');
      else check(match.id_text.size() >= 20);  // only more than 2^64-1 fails to parse
    }
    check_error_body(detail::error_body("not_found", std::string(detail::id_noun(route)) + " " +
                                                         detail::printable(match.id_text, 40) + " not found"));
  } else {
    check(match.result != detail::RouteResult::wrong_method || !match.allowed.empty());
    check_error_body(detail::error_body("not_found", "no route for " + detail::printable(method, 16) + " " +
                                                         detail::printable(path, 256)));
  }

  std::vector<std::pair<std::string_view, std::string_view>> headers;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const std::size_t colon = lines[i].find(':');
    headers.emplace_back(lines[i].substr(0, colon),
                         colon == std::string_view::npos ? std::string_view{} : lines[i].substr(colon + 1));
  }
  detail::Framing framing;
  if (auto refused = detail::check_framing(method, headers, framing)) {
    check(refused->status >= 400 && refused->status < 500);
    check_error_body(detail::error_body(detail::status_code_name(refused->status), refused->message));
  } else {
    check(!(framing.chunked && framing.content_length));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  bodies(input);
  request(input);
  // Any bytes as a message, a code and an extra field: still a valid body, cut on a boundary.
  check_error_body(detail::error_body(input.substr(0, 80), input, {{"field", std::string(input.substr(0, 100))}}));
  const std::string shown = detail::printable(input, 100);
  check(detail::is_valid_utf8(shown) && shown.size() <= 103);
  if (detail::is_valid_utf8(input) && input.size() <= 100) check(shown == input);
  return 0;
}
