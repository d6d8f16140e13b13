// Rendering what kilnd answers so that it cannot fail: text quoted from a request (a path, a
// parser's message, a field name) made valid UTF-8, messages cut on a character boundary, and
// JSON bodies dumped with a replacement for anything nlohmann would refuse. A JSON answer that
// throws while it is rendered would otherwise end the request with a 500, or the connection when
// the transport renders it.
//
// Built twice: into kiln_service and alone into the fuzz target (by clang), so it uses nothing of
// kiln's compiled code.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace kiln::service::detail {

// The longest message an error body carries (a parser's message quoting the body is cut).
inline constexpr std::size_t kMaxMessageBytes = 16 * 1024;

// Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), the rule
// nlohmann's dump() applies.
bool is_valid_utf8(std::string_view bytes) noexcept;

// `bytes` as valid UTF-8 of at most `max_bytes` (plus "..." when cut): each byte that is not part
// of a valid sequence becomes the four characters \xHH, so it stays visible; a cut never splits a
// character.
std::string printable(std::string_view bytes, std::size_t max_bytes = kMaxMessageBytes);

// {"error": {"code", "message", ...extra}}: code and message through printable(), the members of
// `extra` (an object, or null) after them (they cannot replace code or message). Never throws: a
// body that cannot be rendered becomes a fixed internal-error body.
std::string error_body(std::string_view code, std::string_view message, const nlohmann::json& extra = nullptr) noexcept;

// Any JSON value as text; invalid UTF-8 in its strings becomes U+FFFD instead of an exception.
std::string json_text(const nlohmann::json& value) noexcept;

// The error code kilnd uses for an HTTP status it answers without a more specific one.
std::string_view status_code_name(int status) noexcept;

}  // namespace kiln::service::detail
