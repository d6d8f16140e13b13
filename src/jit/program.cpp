#include "kiln/jit/program.hpp"

#include <fstream>
#include <sstream>

#include "kiln/driver/error.hpp"

namespace kiln::jit {
namespace {

bool is_identifier(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  for (char c : name)
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
      return false;
  return true;
}

}  // namespace

std::vector<std::string> CompileOptions::to_nvrtc() const {
  std::vector<std::string> out;
  if (!standard.empty()) out.push_back("--std=" + standard);
  for (const auto& d : defines) {
    std::string_view name = std::string_view(d).substr(0, d.find('='));
    if (!is_identifier(name))
      throw Error(Errc::invalid_argument,
                  "define '" + d + "' does not start with a macro name (expected NAME or NAME=VALUE)");
    out.push_back("-D" + d);
  }
  if (line_info) out.emplace_back("-lineinfo");
  if (fast_math) out.emplace_back("--use_fast_math");
  if (max_registers < 0)
    throw Error(Errc::invalid_argument,
                "max_registers is " + std::to_string(max_registers) + "; it must be 0 (no cap) or positive");
  if (max_registers > 0) out.push_back("--maxrregcount=" + std::to_string(max_registers));
  if (relocatable_device_code) out.emplace_back("-rdc=true");
  if (minimal) out.emplace_back("-minimal");
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

Program Program::from_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(Errc::invalid_argument, "cannot read kernel source file '" + file.string() + "'");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error(Errc::invalid_argument, "error while reading '" + file.string() + "'");
  Program p;
  p.name = file.filename().string();
  p.source = std::move(text).str();
  return p;
}

}  // namespace kiln::jit
