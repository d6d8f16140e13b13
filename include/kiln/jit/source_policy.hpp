// jit::SourcePolicy: what code from outside (a service's clients) may ask NVRTC to do. Each
// refusal is a jit::PolicyError (a kiln::Error, Errc::invalid_argument) whose rule() names the rule
// and whose detail starts with "source policy rule '<rule>'" and names the offending input.
//
// Why the include allow-list is a security boundary: NVRTC opens any file an #include names and its
// log quotes the file's lines (`#include "/etc/passwd"` puts that file's first line into the log),
// and a quoted include of an unregistered name is looked up in the compiling process's working
// folder. Only registered headers and files under the toolkit's include folders may be included.
//
// The identifier check is a first line (macros can paste tokens together); the authoritative
// check is on the compiled PTX (check_ptx), which sees every instruction, inline asm included.
// Compile time cannot be limited in-process: NVRTC cannot be cancelled, so max_compile_time is
// enforced by KernelCache through a compile worker process, which is killed when the limit passes.
//
// Thread safety: a plain value; check() and check_ptx() are const and may run on any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/jit/policy_error.hpp"
#include "kiln/jit/program.hpp"

namespace kiln::jit {

struct SourcePolicy {
  std::size_t max_source_bytes = 1 << 20;   // rule "max_source_bytes"
  std::size_t max_headers = 64;             // rule "max_headers"
  std::size_t max_header_bytes = 1 << 20;   // rule "max_header_bytes" (each header)
  bool allow_include_dirs = false;          // rule "include_dirs": Program::include_dirs
  bool allow_extra_options = false;         // rule "extra_options": raw options could add -I
  // rule "forbidden_identifier": tokens outside comments and literals.
  std::vector<std::string> forbidden_identifiers = {"asm", "__asm", "__asm__"};
  // rule "forbidden_ptx_instruction": opcodes (before the first '.') in the compiled PTX.
  std::vector<std::string> forbidden_ptx_instructions = {"brkpt", "pmevent"};
  // rule "max_compile_time": 0 means no limit. Enforced by KernelCache, which then needs
  // KernelCacheOptions::compile_worker; a compile past it fails with Errc::timeout.
  std::chrono::milliseconds max_compile_time{0};
  // rule "max_compile_memory": the compile worker's address-space limit in bytes, 0: none. Needs
  // a compile worker too; a compile that runs out of memory there is refused by this rule.
  std::uint64_t max_compile_memory = 0;
  // Rules that always apply: "control_characters" (NUL and other control bytes except tab, line
  // feed, carriage return and form feed), "include" (absolute paths, "..", computed includes,
  // names that are neither registered headers nor files under the toolkit's include folders).

  // Checks everything that can be checked before compiling. `toolkit_dirs` are the folders an
  // angle-bracket include may resolve in (default: jit::toolkit_include_dirs()).
  void check(const Program& program) const;
  void check(const Program& program, const std::vector<std::string>& toolkit_dirs) const;
  // Checks compiled PTX; `program_name` is used in the message.
  void check_ptx(std::string_view ptx, std::string_view program_name) const;
};

}  // namespace kiln::jit
