// kiln::Error: the one exception type of kiln, and the table of every code it can carry.
//
// Thread safety: the table is immutable; Error objects are values (copy them freely; a const
// Error may be read from any number of threads).
#pragma once

#include <cstdint>
#include <exception>
#include <optional>
#include <source_location>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

// Which library a code belongs to. The same number means different things in each.
enum class Domain : std::uint8_t { driver, nvrtc, nvml, kiln, nvjitlink };

std::string_view to_string(Domain domain) noexcept;

// kiln's own codes (Domain::kiln), for failures no library reported.
enum class Errc : int {
  driver_not_found = 1,   // libcuda.so.1 could not be loaded
  nvrtc_not_found = 2,    // no NVRTC library in the search order
  nvml_not_found = 3,     // libnvidia-ml.so.1 could not be loaded (NVML is optional)
  symbol_missing = 4,     // the library lacks an entry point kiln needs
  driver_too_old = 5,     // the entry point exists only in a newer driver
  invalid_argument = 6,   // a caller passed something kiln refuses before any driver call
  version_mismatch = 7,   // NVRTC newer than the driver, or similar misalignment
  compile_failed = 8,     // NVRTC rejected the source (the log is in the detail)
  invalid_handle = 9,     // use of a moved-from or empty kiln object
  timeout = 10,           // a deadline passed before the work finished
  internal = 11,          // a broken invariant inside kiln
  unavailable = 12,       // a service kiln was told to use (Redis) cannot be reached or refused
  cancelled = 13,         // the caller abandoned a wait (stop_token, Go context) before the work finished
  nvjitlink_not_found = 14,  // no nvJitLink library in the search order (only linking needs it)
  link_failed = 15,       // nvJitLink rejected the inputs (the log and the inputs are in the detail)
};

// One entry of the code table. Text is static: string_views stay valid for the program's life.
struct ErrorInfo {
  Domain domain;
  int code;
  std::string_view name;         // symbolic name, e.g. "CUDA_ERROR_ILLEGAL_ADDRESS"
  std::string_view description;  // what the library's documentation says the code means
  std::string_view hint;         // kiln's explanation: what it means in practice, what to do
  bool sticky;                   // the context is unusable afterwards; only a new process recovers
};

// Every CUresult of the CUDA headers kiln was built with, every nvrtcResult, the NVML return
// codes, kiln's own codes and every nvJitLinkResult.
std::span<const ErrorInfo> error_table() noexcept;
const ErrorInfo* find_error(Domain domain, int code) noexcept;
const ErrorInfo* find_error(std::string_view name) noexcept;  // exact symbolic name

class Error : public std::exception {
 public:
  // `call` names the failing function ("cuMemAlloc"); `detail` adds context (a path, a log).
  Error(Domain domain, int code, std::string call, std::string detail = {},
        std::source_location where = std::source_location::current());
  Error(Errc code, std::string detail, std::source_location where = std::source_location::current());

  Domain domain() const noexcept { return domain_; }
  int code() const noexcept { return code_; }
  std::string_view name() const noexcept;
  std::string_view description() const noexcept;
  std::string_view hint() const noexcept;
  bool sticky() const noexcept;
  const std::string& call() const noexcept { return call_; }
  const std::string& detail() const noexcept { return detail_; }
  const std::source_location& where() const noexcept { return where_; }
  // Domain and code together, so callers can compare without knowing the domain's enum.
  bool is(Domain domain, int code) const noexcept { return domain_ == domain && code_ == code; }
  bool is(Errc code) const noexcept { return is(Domain::kiln, static_cast<int>(code)); }

  // "cuMemAlloc failed: CUDA_ERROR_OUT_OF_MEMORY (2): <description>. <detail>. Hint: <hint>
  //  [at file:line]"
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  Domain domain_;
  int code_;
  const ErrorInfo* info_;  // null for a code missing from the table (a newer library)
  std::string call_;
  std::string detail_;
  std::source_location where_;
  std::string message_;
};

// Parses "CUDA_ERROR_ILLEGAL_ADDRESS", "700", "nvrtc:6", "nvjitlink:4" or "kiln:1"; a bare number is looked up
// in every domain and may match several entries.
std::vector<const ErrorInfo*> lookup_errors(std::string_view text);

}  // namespace kiln
