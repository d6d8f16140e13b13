// The typed answers of kilnd's service core: a value or a ServiceError whose kind a front end maps
// to its own answer (HTTP: a status; gRPC: a code), never parsing the message.
//
// Not public API: kilnd's front ends are its only users.
// Thread safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include <nlohmann/json.hpp>

namespace kiln::service::core {

enum class ErrorKind : std::uint8_t {
  not_found,           // no such kernel, buffer or job for this tenant (another tenant's reads the same)
  invalid_argument,    // the request is well formed but names something impossible (field says which)
  too_large,           // a size over one of the service's limits
  policy,              // a source policy rule refused the program (rule names it)
  compile_failed,      // NVRTC refused the program (details: diagnostics, target)
  too_many_kernels,    // the tenant holds max_kernels_per_tenant kernels
  too_many_regions,    // the tenant holds max_shm_regions_per_tenant shared memory regions
  too_many_compiles,   // the tenant's compile slots and queue are full
  compile_busy,        // no compile slot came free in time (retry soon)
  compile_pending,     // scale-out: the shared queue's compile did not finish in time (details: job)
  queue_full,          // the launch queue (or the tenant's share of it) is full
  shutting_down,       // the service is draining
  out_of_memory,       // the GPU cannot hold it (details: the device's memory picture)
  out_of_host_memory,  // kilnd could not allocate host memory
  unavailable,         // no GPU (or no NVRTC) can serve it
  forbidden,           // the service's configuration does not allow it (allow_client_shm off)
  library_unavailable, // a device library cannot be linked: no nvJitLink (details: name), or in
                       // scale-out the compiling node's library of that name differs
  not_serving,         // a repository package has no version in service, or the one named is still loading
  package_refused,     // a repository package version failed to load (details: package, version, problem, reason)
  internal,            // a bug or an unexpected library error (details: name)
};

std::string_view to_string(ErrorKind kind) noexcept;
// The error code the front ends answer for `kind` (the HTTP API's "error.code", gRPC's
// kiln-error-code metadata): bad_request, not_found, source_policy, no_gpu, ...
std::string_view api_error_code(ErrorKind kind) noexcept;

struct ServiceError {
  ErrorKind kind = ErrorKind::internal;
  std::string message;
  std::string rule;           // policy: the source policy rule
  std::string field;          // invalid_argument: the request field at fault, when one is
  std::string hint;           // what the caller can do about it, when the core knows
  std::string error_name;     // kiln's code behind it (KILN_ERROR_DRIVER_NOT_FOUND), when one is: its
                              // explanation and hint are in driver/error_table (the status page shows them)
  nlohmann::json details;     // kind-specific members (an object, or null)
};

// What an error body carries beside the code and message: `details`' members, then rule, field and
// hint where set (HTTP's body and the IPC socket's; gRPC puts them in trailers).
nlohmann::json error_members(const ServiceError& e);

// A value or a ServiceError (std::expected is C++23).
template <class T>
class Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}           // NOLINT: implicit on purpose
  Result(ServiceError error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT
  bool ok() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  T& value() { return std::get<0>(state_); }
  const T& value() const { return std::get<0>(state_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const ServiceError& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, ServiceError> state_;
};

struct Done {};  // a Result without a value

inline ServiceError error(ErrorKind kind, std::string message, std::string field = {}) {
  ServiceError e;
  e.kind = kind;
  e.message = std::move(message);
  e.field = std::move(field);
  return e;
}  // a Result without a value

}  // namespace kiln::service::core
