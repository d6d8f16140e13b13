// The gateway's request bodies, parsed from JSON into values. Parsing is separate from the server so
// it can be fuzzed on its own (fuzz/), and it reports a refusal as a value, not an exception:
// malformed input from a client is expected, and the fuzz target is built by a compiler that cannot
// build the rest of kiln. The gateway turns a RequestError into 400 with its text.
//
// Everything here checks shape and ranges only; what needs state (does the kernel exist, does the
// buffer belong to the tenant) is the gateway's job.
//
// Thread safety: pure functions over values.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "kiln/jit/program.hpp"
#include "kiln/service/gpu_backend.hpp"
#include "kiln/service/priority.hpp"

namespace kiln::service {

// Why a body was refused: the JSON path of the offending field ("" for the whole body) and what is
// wrong with it. text() is "<field>: <message>".
struct RequestError {
  std::string field;
  std::string message;
  std::string text() const { return field.empty() ? message : field + ": " + message; }
};

// Either a parsed request or the reason there is none.
template <class T>
class Parsed {
 public:
  Parsed(T value) : state_(std::move(value)) {}             // NOLINT: implicit on purpose
  Parsed(RequestError error) : state_(std::move(error)) {}  // NOLINT
  bool ok() const noexcept { return std::holds_alternative<T>(state_); }
  T& value() { return std::get<T>(state_); }
  const T& value() const { return std::get<T>(state_); }
  const RequestError& error() const { return std::get<RequestError>(state_); }

 private:
  std::variant<T, RequestError> state_;
};

struct RequestLimits {
  std::size_t max_launch_arguments = 256;
  // Applied while a body is parsed, before any of it is built (detail/bounded_json.hpp).
  std::size_t max_json_depth = 64;       // nested arrays and objects
  std::size_t max_json_values = 65536;   // values and object keys in one body
};

// POST /v1/kernels: {"source", "name"?, "headers"? {name: text}, "include_dirs"? [..],
// "name_expressions"? [..], "options"? {"std", "defines", "fast_math", "line_info",
// "max_registers", "rdc", "extra"}, "libraries"? ["name", ...]}
struct KernelRequest {
  jit::Program program;
  // Device libraries (kilnd's device_libraries) to link with, in order: distinct names, at most
  // kMaxKernelLibraries. Empty: compiled alone, as before.
  std::vector<std::string> libraries;
};
inline constexpr std::size_t kMaxKernelLibraries = 64;

// POST /v1/buffers: {"device"?: 0, "bytes": N, "tag"?: "text"}
struct BufferRequest {
  int device = 0;
  std::uint64_t bytes = 0;
  std::string tag;
};

// POST /v1/shm: {"name": "/object", "bytes": n, "offset"?: 0, "owner_pid"?: pid}
struct SharedMemoryRequest {
  std::string name;
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;
  int owner_pid = 0;  // the region ends with this process; 0: none
};

// POST /v1/buffers/{id}/shm: {"direction": "upload" | "download", "region": id, "region_offset"?: 0,
// "offset"?: 0, "bytes"?: n (default: the rest of the region)}
struct SharedMemoryCopyRequest {
  bool upload = true;  // region -> buffer; false: buffer -> region
  std::uint64_t region = 0;
  std::uint64_t region_offset = 0;
  std::uint64_t offset = 0;  // in the buffer
  std::optional<std::uint64_t> bytes;
};

// POST /v1/launches: {"kernel": id | "package[:version]", "function": "name or name expression"
// (optional for a package of one entry point), "grid"?: [x,y,z] or x,
// "block"?: ..., "shared_bytes"?, "arguments"?: [{"type": "f32", "value": 1.5} |
// {"buffer": id, "offset"?: n}], "priority"?: "high|normal|low", "deadline_ms"?, "device"?,
// "wait"?: true}
struct LaunchRequest {
  std::uint64_t kernel = 0;
  // "kernel" as a string: a repository package, "name" (the version in service) or "name:version".
  std::string package;
  // Empty only with a package: its one entry point.
  std::string function;
  std::array<unsigned, 3> grid{1, 1, 1};
  std::array<unsigned, 3> block{1, 1, 1};
  unsigned shared_bytes = 0;
  std::vector<KernelArgument> arguments;
  Priority priority = Priority::normal;
  std::optional<std::chrono::milliseconds> deadline;
  std::optional<int> device;
  bool wait = false;  // answer when the launch finishes (200) rather than at once (202 + job id)
};

// POST /v1/repository/{name}/load and .../unload: {"version"?: n}, or no body.
struct PackageVersionRequest {
  std::optional<std::uint64_t> version;
};

// Refusals name the field; their text is valid UTF-8 (raw bytes quoted from the body are escaped).
Parsed<KernelRequest> parse_kernel_request(std::string_view body, const RequestLimits& limits = {});
Parsed<BufferRequest> parse_buffer_request(std::string_view body, const RequestLimits& limits = {});
Parsed<LaunchRequest> parse_launch_request(std::string_view body, const RequestLimits& limits = {});
Parsed<SharedMemoryRequest> parse_shared_memory_request(std::string_view body, const RequestLimits& limits = {});
Parsed<PackageVersionRequest> parse_package_version_request(std::string_view body, const RequestLimits& limits = {});
Parsed<SharedMemoryCopyRequest> parse_shared_memory_copy_request(std::string_view body, const RequestLimits& limits = {});

std::string_view to_string(ScalarArgument::Type type) noexcept;  // "i32", ..., "f64"
std::optional<ScalarArgument::Type> parse_scalar_type(std::string_view text) noexcept;

}  // namespace kiln::service
