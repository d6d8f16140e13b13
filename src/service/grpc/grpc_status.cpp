#include "grpc_status.hpp"

#include <string>

#include <nlohmann/json.hpp>

#include "detail/error_body.hpp"

namespace kiln::service::grpc_front {

namespace {
// grpc-message travels in the trailers too: kept well under the client's metadata limit.
constexpr std::size_t kMaxMessageBytes = 2048;
constexpr std::size_t kMaxDetailsBytes = 4096;
}  // namespace

grpc::StatusCode status_code_of(core::ErrorKind kind) noexcept {
  using core::ErrorKind;
  switch (kind) {
    case ErrorKind::not_found: return grpc::StatusCode::NOT_FOUND;
    // The program or the request cannot be served as sent: the caller must change it.
    case ErrorKind::invalid_argument:
    case ErrorKind::policy:
    case ErrorKind::compile_failed: return grpc::StatusCode::INVALID_ARGUMENT;
    // Limits and quotas: the caller may retry smaller, later, or after freeing something.
    case ErrorKind::too_large:
    case ErrorKind::too_many_kernels:
    case ErrorKind::too_many_regions:
    case ErrorKind::too_many_compiles:
    case ErrorKind::queue_full:
    case ErrorKind::out_of_memory:
    case ErrorKind::out_of_host_memory: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    // Retry soon (or elsewhere): nothing is wrong with the request.
    case ErrorKind::compile_busy:
    case ErrorKind::shutting_down:
    case ErrorKind::unavailable:
    case ErrorKind::not_serving: return grpc::StatusCode::UNAVAILABLE;
    case ErrorKind::compile_pending: return grpc::StatusCode::DEADLINE_EXCEEDED;
    case ErrorKind::forbidden: return grpc::StatusCode::PERMISSION_DENIED;
    // The service's state refuses it until an operator acts (a broken package, no nvJitLink).
    case ErrorKind::library_unavailable:
    case ErrorKind::package_refused: return grpc::StatusCode::FAILED_PRECONDITION;
    case ErrorKind::internal: return grpc::StatusCode::INTERNAL;
  }
  return grpc::StatusCode::INTERNAL;
}

std::string_view status_code_name(grpc::StatusCode code) noexcept {
  using grpc::StatusCode;
  switch (code) {
    case StatusCode::OK: return "OK";
    case StatusCode::CANCELLED: return "CANCELLED";
    case StatusCode::UNKNOWN: return "UNKNOWN";
    case StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case StatusCode::NOT_FOUND: return "NOT_FOUND";
    case StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case StatusCode::ABORTED: return "ABORTED";
    case StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case StatusCode::INTERNAL: return "INTERNAL";
    case StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case StatusCode::DATA_LOSS: return "DATA_LOSS";
    case StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

std::string metadata_value(std::string_view text) {
  constexpr std::size_t kMaxValueBytes = 4096;
  std::string out(text.substr(0, kMaxValueBytes));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
  return out;
}

grpc::Status refuse(grpc::ServerContext& context, grpc::StatusCode status, std::string_view code,
                    std::string_view message, std::string_view field) {
  context.AddTrailingMetadata("kiln-error-code", metadata_value(code));
  if (!field.empty()) context.AddTrailingMetadata("kiln-error-field", metadata_value(field));
  return {status, detail::printable(message, kMaxMessageBytes)};
}

grpc::Status refuse(grpc::ServerContext& context, const core::ServiceError& e) {
  if (!e.hint.empty()) context.AddTrailingMetadata("kiln-error-hint", metadata_value(e.hint));
  nlohmann::json details = e.details.is_object() ? e.details : nlohmann::json::object();
  if (!e.rule.empty()) details["rule"] = e.rule;
  if (!e.error_name.empty()) details["name"] = e.error_name;
  if (!details.empty()) {
    // ASCII only (\u escapes), invalid UTF-8 replaced: a metadata value cannot carry more. The
    // trailers share the client's metadata limit (8 KiB by default): long members (a compile's
    // diagnostics) are left out and the details say so.
    auto text = [](const nlohmann::json& j) { return j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace); };
    std::string value = text(details);
    if (value.size() > kMaxDetailsBytes) {
      nlohmann::json small = nlohmann::json::object();
      for (const auto& [key, member] : details.items())
        if (!member.is_structured() && text(member).size() < 256) small[key] = member;
      small["truncated"] = true;
      value = text(small);
    }
    context.AddTrailingMetadata("kiln-error-details", value);
  }
  return refuse(context, status_code_of(e.kind), core::api_error_code(e.kind), e.message, e.field);
}

}  // namespace kiln::service::grpc_front
