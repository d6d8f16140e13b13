#include "kiln/jit/source_policy.hpp"

#include <algorithm>
#include <filesystem>

#include "kiln/driver/error.hpp"
#include "kiln/jit/compiler.hpp"
#include "kiln/jit/policy_error.hpp"

namespace kiln::jit {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void refuse(std::string_view rule, const std::string& what) {
  throw PolicyError(std::string(rule), {}, what);
}

bool is_ident_char(char c) {
  return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

void check_control_characters(std::string_view text, const std::string& what) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f') || c == 0x7f) {
      char code[8];
      std::snprintf(code, sizeof code, "0x%02x", c);
      refuse("control_characters", what + " contains control character " + code + " at offset " + std::to_string(i));
    }
  }
}

// The text with comments, string literals and character literals blanked out (newlines kept, so
// line numbers still count), so only code is searched.
std::string code_only(std::string_view text) {
  std::string out(text);
  enum { code, line_comment, block_comment, string, character } state = code;
  for (std::size_t i = 0; i < out.size(); ++i) {
    char c = out[i], next = i + 1 < out.size() ? out[i + 1] : '\0';
    switch (state) {
      case code:
        if (c == '/' && next == '/') state = line_comment, out[i] = ' ';
        else if (c == '/' && next == '*') state = block_comment, out[i] = ' ', out[++i] = ' ';
        else if (c == '"') state = string;
        else if (c == '\'' && !(i > 0 && is_ident_char(out[i - 1]))) state = character;  // 1'000 separators
        break;
      case line_comment:
        if (c == '\n') state = code;
        else out[i] = ' ';
        break;
      case block_comment:
        if (c == '*' && next == '/') state = code, out[i] = ' ', out[++i] = ' ';
        else if (c != '\n') out[i] = ' ';
        break;
      case string:
      case character:
        if (c == '\\' && next != '\n') out[i] = ' ', out[++i] = ' ';
        else if (c == (state == string ? '"' : '\'') || c == '\n') state = code;
        else out[i] = ' ';
        break;
    }
  }
  return out;
}

int line_of(std::string_view text, std::size_t offset) {
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(offset), '\n'));
}

bool under_toolkit(const std::string& name, const std::vector<std::string>& toolkit_dirs) {
  std::error_code ec;
  return std::any_of(toolkit_dirs.begin(), toolkit_dirs.end(),
                     [&](const std::string& dir) { return fs::is_regular_file(fs::path(dir) / name, ec); });
}

// Every #include of `text` must name a registered header, or (angle brackets) a toolkit file.
void check_includes(std::string_view text, const std::string& code, const std::string& what, const Program& program,
                    const std::vector<std::string>& toolkit_dirs) {
  std::size_t pos = 0;
  while (pos < code.size()) {
    std::size_t eol = code.find('\n', pos);
    if (eol == std::string::npos) eol = code.size();
    std::string_view line(code.data() + pos, eol - pos);
    const std::size_t line_start = pos;
    pos = eol + 1;
    auto hash = line.find_first_not_of(" \t");
    if (hash == std::string_view::npos || line[hash] != '#') continue;
    auto word = line.find_first_not_of(" \t", hash + 1);
    if (word == std::string_view::npos) continue;
    std::string_view rest = line.substr(word);
    std::size_t word_end = 0;
    while (word_end < rest.size() && is_ident_char(rest[word_end])) ++word_end;
    std::string_view directive = rest.substr(0, word_end);
    if (directive != "include" && directive != "include_next" && directive != "import") continue;

    const std::string where = what + " line " + std::to_string(line_of(text, line_start));
    // Literals were blanked in `code`; read the operand from the original text.
    std::string_view original = text.substr(line_start + word + word_end, eol - line_start - word - word_end);
    auto open = original.find_first_not_of(" \t");
    const char close = open == std::string_view::npos ? '\0' : original[open] == '"' ? '"' : original[open] == '<' ? '>' : '\0';
    auto end = close ? original.find(close, open + 1) : std::string_view::npos;
    if (!close || end == std::string_view::npos)
      refuse("include", where + ": computed or malformed #include (only \"name\" and <name> are allowed)");
    std::string name(original.substr(open + 1, end - open - 1));
    if (name.empty()) refuse("include", where + ": empty #include");
    if (name.front() == '/') refuse("include", where + ": absolute path '" + name + "' in #include");
    for (std::size_t at = 0; (at = name.find("..", at)) != std::string::npos; at += 2) {
      bool starts = at == 0 || name[at - 1] == '/';
      bool ends = at + 2 == name.size() || name[at + 2] == '/';
      if (starts && ends) refuse("include", where + ": '..' in #include \"" + name + "\"");
    }
    if (program.headers.count(name)) continue;
    if (close == '>' && under_toolkit(name, toolkit_dirs)) continue;
    refuse("include", where + ": '" + name + "' is neither a registered header" +
                          (close == '>' ? " nor a file of the toolkit's include folders" :
                                          " (quoted includes may name registered headers only)"));
  }
}

void check_identifiers(const std::string& code, std::string_view text, const std::string& what,
                       const std::vector<std::string>& forbidden) {
  if (forbidden.empty()) return;
  for (std::size_t i = 0; i < code.size();) {
    if (!is_ident_char(code[i]) || (i > 0 && is_ident_char(code[i - 1]))) {
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < code.size() && is_ident_char(code[end])) ++end;
    std::string_view token(code.data() + i, end - i);
    if (std::find(forbidden.begin(), forbidden.end(), token) != forbidden.end())
      refuse("forbidden_identifier", what + " line " + std::to_string(line_of(text, i)) + " uses '" +
                                         std::string(token) + "'");
    i = end;
  }
}

void check_text(std::string_view text, const std::string& what, const SourcePolicy& policy, const Program& program,
                const std::vector<std::string>& toolkit_dirs) {
  check_control_characters(text, what);
  const std::string code = code_only(text);
  check_includes(text, code, what, program, toolkit_dirs);
  check_identifiers(code, text, what, policy.forbidden_identifiers);
}

}  // namespace

void SourcePolicy::check(const Program& program) const { check(program, toolkit_include_dirs()); }

void SourcePolicy::check(const Program& program, const std::vector<std::string>& toolkit_dirs) const {
  const std::string name = "program '" + program.name + "'";
  if (program.source.size() > max_source_bytes)
    refuse("max_source_bytes", name + " has " + std::to_string(program.source.size()) + " bytes of source; the limit is " +
                                   std::to_string(max_source_bytes));
  if (program.headers.size() > max_headers)
    refuse("max_headers", name + " has " + std::to_string(program.headers.size()) + " headers; the limit is " +
                              std::to_string(max_headers));
  if (!allow_include_dirs && !program.include_dirs.empty())
    refuse("include_dirs", name + " names include folder '" + program.include_dirs.front() +
                               "'; only registered headers and the toolkit may be included");
  if (!allow_extra_options && !program.options.extra.empty())
    refuse("extra_options", name + " passes raw option '" + program.options.extra.front() + "'");
  check_control_characters(program.name, "the name of " + name);
  for (const auto& d : program.options.defines) check_control_characters(d, "define '" + d + "'");
  for (const auto& e : program.name_expressions) check_control_characters(e, "a name expression of " + name);
  check_text(program.source, name, *this, program, toolkit_dirs);
  for (const auto& [header, text] : program.headers) {
    const std::string what = "header '" + header + "' of " + name;
    if (text.size() > max_header_bytes)
      refuse("max_header_bytes", what + " has " + std::to_string(text.size()) + " bytes; the limit is " +
                                     std::to_string(max_header_bytes));
    check_control_characters(header, "a header name of " + name);
    check_text(text, what, *this, program, toolkit_dirs);
  }
}

void SourcePolicy::check_ptx(std::string_view ptx, std::string_view program_name) const {
  if (forbidden_ptx_instructions.empty()) return;
  int line_number = 0;
  while (!ptx.empty()) {
    auto nl = ptx.find('\n');
    std::string_view line = ptx.substr(0, nl);
    ptx.remove_prefix(nl == std::string_view::npos ? ptx.size() : nl + 1);
    ++line_number;
    if (auto comment = line.find("//"); comment != std::string_view::npos) line = line.substr(0, comment);
    // Statements may share a line ("{ brkpt; }"): look at each.
    for (std::size_t start = 0; start < line.size();) {
      std::size_t end = line.find_first_of(";{}", start);
      if (end == std::string_view::npos) end = line.size();
      std::string_view stmt = line.substr(start, end - start);
      start = end + 1;
      auto first = stmt.find_first_not_of(" \t\r");
      if (first == std::string_view::npos) continue;
      stmt.remove_prefix(first);
      if (stmt.front() == '@') {  // predicate guard: "@%p1 bra ..." / "@!%p1 trap"
        auto space = stmt.find_first_of(" \t");
        if (space == std::string_view::npos) continue;
        stmt.remove_prefix(space);
        stmt.remove_prefix(std::min(stmt.size(), stmt.find_first_not_of(" \t")));
      }
      std::size_t op_end = 0;
      while (op_end < stmt.size() && (is_ident_char(stmt[op_end]))) ++op_end;
      std::string_view opcode = stmt.substr(0, op_end);
      if (op_end < stmt.size() && stmt[op_end] == ':') continue;  // a label
      if (std::find(forbidden_ptx_instructions.begin(), forbidden_ptx_instructions.end(), opcode) !=
          forbidden_ptx_instructions.end())
        refuse("forbidden_ptx_instruction", "program '" + std::string(program_name) + "' compiles to PTX line " +
                                                std::to_string(line_number) + " using instruction '" +
                                                std::string(opcode) + "'");
    }
  }
}

}  // namespace kiln::jit
