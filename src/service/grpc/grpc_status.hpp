// A service core error as a gRPC answer: the status code for its kind, kilnd's message, and the
// trailing metadata proto/kiln/v1/kilnd.proto documents (kiln-error-code, the HTTP API's code;
// kiln-error-field, kiln-error-hint and kiln-error-details when there are some). The mapping is the
// gRPC front end's own, as server.cpp's is HTTP's; the codes both answer come from the core
// (core::api_error_code).
//
// Not public API. Thread safety: pure functions (each writes only the context it is given).
#pragma once

#include <string_view>

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include "core/service_error.hpp"

namespace kiln::service::grpc_front {

grpc::StatusCode status_code_of(core::ErrorKind kind) noexcept;

// The code's name as gRPC spells it ("OK", "NOT_FOUND", ...; "UNKNOWN" for a number it has none
// for): kiln_grpc_requests_total's code label.
std::string_view status_code_name(grpc::StatusCode code) noexcept;

// The status for `error`, its metadata added to `context`'s trailers.
grpc::Status refuse(grpc::ServerContext& context, const core::ServiceError& error);

// A refusal that is the front end's own (an unknown token, a malformed first chunk): `code` is the
// kiln-error-code (unauthorized, bad_request, ...); `field` when one field is at fault.
grpc::Status refuse(grpc::ServerContext& context, grpc::StatusCode status, std::string_view code,
                    std::string_view message, std::string_view field = {});

// Metadata values are printable ASCII: anything else becomes '?', and values are cut at 4 KiB.
std::string metadata_value(std::string_view text);

}  // namespace kiln::service::grpc_front
