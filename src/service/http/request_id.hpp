// Request ids (X-Request-Id): the client's own when it is a fair one (1 to kMaxRequestIdBytes of
// RFC 9110 token characters), else one made here. Every answer carries it back, and kilnd's log
// lines and job records carry it, so one grep follows a request through the service.
//
// Thread safety: free functions; make_request_id() may be called from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace kiln::service::http {

inline constexpr std::size_t kMaxRequestIdBytes = 128;
inline constexpr std::string_view kRequestIdHeader = "X-Request-Id";

// Whether a client's id can be kept as it is: 1-128 bytes, each an RFC 9110 tchar
// (letters, digits and !#$%&'*+-.^_`|~), so it is safe in a header, a log line and JSON.
bool valid_request_id(std::string_view id) noexcept;

// A new id, unique within this process and, with its random per-process prefix, in practice
// among processes: 16 hex digits, '-', a counter in hex ("3f9c2e17b4d5e60a-1c").
std::string make_request_id();

// The client's id when valid_request_id(), else make_request_id().
std::string request_id_for(std::string_view client_value);

}  // namespace kiln::service::http
