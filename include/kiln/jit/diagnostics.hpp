// Diagnostics: NVRTC's log parsed into structured entries, and printed back the way compilers
// print them (`kernel.cu:12:5: error: ...`, the source line, a caret).
//
// Thread safety: free functions over values; no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::jit {

enum class Severity : std::uint8_t { remark, warning, error, fatal };

std::string_view to_string(Severity severity) noexcept;  // "remark", "warning", "error", "fatal error"

struct Diagnostic {
  std::string file;         // as NVRTC names it: the program's name, a header's, or a path
  int line = 0;             // 1-based; 0 when the message has no location
  int column = 0;           // 1-based; 0 when NVRTC printed no caret
  Severity severity = Severity::error;
  std::string code;         // NVRTC's number, e.g. "177-D"; empty for errors without one
  std::string message;
  std::string source_line;  // the offending line as NVRTC quoted it (empty if not quoted)
  std::vector<std::string> context;  // follow-up lines, e.g. "detected during instantiation of ..."

  // "file:line:col: severity: message" then the source line and a caret under the column.
  std::string format() const;
};

// Parses NVRTC's log. Lines that carry no diagnostic (the summary, remarks about suppression)
// are dropped; lines that continue a diagnostic are attached to it as context.
std::vector<Diagnostic> parse_nvrtc_log(std::string_view log);

// Every diagnostic formatted, one after the other.
std::string format_diagnostics(const std::vector<Diagnostic>& diagnostics);

bool has_errors(const std::vector<Diagnostic>& diagnostics) noexcept;

}  // namespace kiln::jit
