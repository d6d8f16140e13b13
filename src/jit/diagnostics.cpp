#include "kiln/jit/diagnostics.hpp"

#include <algorithm>
#include <array>
#include <utility>

namespace kiln::jit {
namespace {

// NVRTC indents the quoted source line by two spaces beyond the source's own indentation.
constexpr std::size_t kQuoteIndent = 2;

struct SeverityWord {
  std::string_view word;
  Severity severity;
};
constexpr std::array kSeverityWords{
    SeverityWord{"catastrophic error", Severity::fatal}, SeverityWord{"internal error", Severity::fatal},
    SeverityWord{"fatal error", Severity::fatal},        SeverityWord{"error", Severity::error},
    SeverityWord{"warning", Severity::warning},          SeverityWord{"remark", Severity::remark},
};

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "error: msg", "warning #177-D: msg": fills severity, code and message.
bool parse_severity_and_message(std::string_view rest, Diagnostic& d) {
  for (const auto& [word, severity] : kSeverityWords) {
    if (!rest.starts_with(word)) continue;
    std::string_view after = rest.substr(word.size());
    std::string code;
    if (after.starts_with(" #")) {
      auto end = after.find(':');
      if (end == std::string_view::npos) return false;
      code = std::string(after.substr(2, end - 2));
      after = after.substr(end);
    }
    if (!after.starts_with(": ")) return false;
    d.severity = severity;
    d.code = std::move(code);
    d.message = std::string(after.substr(2));
    return true;
  }
  return false;
}

// "kernel.cu(12): error: ..." or a located-less "error: ..." / "nvrtc: error: ...".
bool parse_header(std::string_view line, Diagnostic& d) {
  if (auto close = line.find("): "); close != std::string_view::npos) {
    auto open = line.rfind('(', close);
    if (open != std::string_view::npos && open > 0 && all_digits(line.substr(open + 1, close - open - 1))) {
      Diagnostic candidate;
      candidate.file = std::string(line.substr(0, open));
      candidate.line = std::stoi(std::string(line.substr(open + 1, close - open - 1)));
      if (parse_severity_and_message(line.substr(close + 3), candidate)) {
        d = std::move(candidate);
        return true;
      }
    }
  }
  if (line.starts_with("nvrtc: ")) line.remove_prefix(7);
  Diagnostic candidate;
  if (parse_severity_and_message(line, candidate)) {
    d = std::move(candidate);
    return true;
  }
  return false;
}

bool is_caret_line(std::string_view line) {
  auto caret = line.find('^');
  return caret != std::string_view::npos && line.find_first_not_of(' ') == caret &&
         line.find_first_not_of(' ', caret + 1) == std::string_view::npos;
}

bool is_summary(std::string_view line) {
  return line.starts_with("Remark: ") || line.starts_with("Compilation terminated") ||
         line.find(" detected in the compilation of ") != std::string_view::npos;
}

}  // namespace

std::string_view to_string(Severity severity) noexcept {
  switch (severity) {
    case Severity::remark: return "remark";
    case Severity::warning: return "warning";
    case Severity::error: return "error";
    case Severity::fatal: return "fatal error";
  }
  return "error";
}

std::vector<Diagnostic> parse_nvrtc_log(std::string_view log) {
  std::vector<Diagnostic> out;
  bool in_diagnostic = false;  // lines until the next blank one belong to the last diagnostic
  std::string_view quoted;     // the source line as NVRTC printed it, waiting for its caret
  while (!log.empty()) {
    auto nl = log.find('\n');
    std::string_view line = log.substr(0, nl);
    log.remove_prefix(nl == std::string_view::npos ? log.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    Diagnostic d;
    if (parse_header(line, d)) {
      out.push_back(std::move(d));
      in_diagnostic = true;
      quoted = {};
      continue;
    }
    if (line.find_first_not_of(' ') == std::string_view::npos) {
      if (in_diagnostic && !quoted.empty()) out.back().context.emplace_back(quoted.substr(quoted.find_first_not_of(' ')));
      in_diagnostic = false;
      quoted = {};
      continue;
    }
    if (!in_diagnostic || is_summary(line)) continue;
    Diagnostic& last = out.back();
    if (is_caret_line(line) && !quoted.empty()) {
      std::size_t caret = line.find('^');
      std::size_t indent = std::min(kQuoteIndent, quoted.find_first_not_of(' '));
      last.column = caret >= indent ? static_cast<int>(caret - indent) + 1 : 1;
      last.source_line = std::string(quoted.substr(indent));
      quoted = {};
    } else if (last.source_line.empty() && quoted.empty() && last.context.empty() && last.line > 0) {
      quoted = line;  // a quote, if a caret follows; otherwise context (handled below)
    } else {
      if (!quoted.empty()) last.context.emplace_back(quoted.substr(quoted.find_first_not_of(' '))), quoted = {};
      auto first = line.find_first_not_of(' ');
      last.context.emplace_back(line.substr(first));
    }
  }
  if (in_diagnostic && !quoted.empty()) out.back().context.emplace_back(quoted.substr(quoted.find_first_not_of(' ')));
  return out;
}

std::string Diagnostic::format() const {
  std::string s;
  if (!file.empty()) {
    s += file + ":";
    if (line > 0) s += std::to_string(line) + ":";
    if (column > 0) s += std::to_string(column) + ":";
    s += " ";
  }
  s += std::string(to_string(severity)) + ": " + message;
  if (!code.empty()) s += " [#" + code + "]";
  s += "\n";
  if (!source_line.empty()) {
    s += "  " + source_line + "\n";
    if (column > 0) {
      std::string pad;
      // Keep tabs so the caret lines up with the quoted text.
      for (std::size_t i = 0; i + 1 < static_cast<std::size_t>(column) && i < source_line.size(); ++i)
        pad += source_line[i] == '\t' ? '\t' : ' ';
      s += "  " + pad + "^\n";
    }
  }
  for (const auto& c : context) s += "  " + c + "\n";
  return s;
}

std::string format_diagnostics(const std::vector<Diagnostic>& diagnostics) {
  std::string s;
  for (const auto& d : diagnostics) s += d.format();
  return s;
}

bool has_errors(const std::vector<Diagnostic>& diagnostics) noexcept {
  return std::any_of(diagnostics.begin(), diagnostics.end(),
                     [](const Diagnostic& d) { return d.severity >= Severity::error; });
}

}  // namespace kiln::jit
