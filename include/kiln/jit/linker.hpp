// jit::link: nvJitLink over any number of device-code pieces (LTO-IR, PTX, CUBIN, fatbin, host
// objects) into one image for one real architecture, loaded like a compiled kernel. With any LTO-IR
// input the link optimises across inputs (-lto): a device function from a library inlines into the
// kernel that calls it. KernelCache::link caches the result under link_key(); device_library.hpp
// builds on both.
//
// nvJitLink is loaded at run time (driver/nvjitlink_api.hpp); without it every call here throws
// kiln::Error (Errc::nvjitlink_not_found) and the rest of kiln works.
//
// Thread safety: link() may run on many threads at once (each uses its own nvJitLinkHandle).
// LinkInput, LinkJob and LinkResult are values; a LinkInput's bytes are shared, immutable.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/driver/error.hpp"
#include "kiln/jit/artifact.hpp"
#include "kiln/jit/cache_key.hpp"
#include "kiln/jit/diagnostics.hpp"
#include "kiln/jit/target.hpp"

namespace kiln::jit {

// nvJitLink's input kinds (NVJITLINK_INPUT_*). A host object or library carries its device code as
// an embedded fatbin.
enum class LinkInputKind : std::uint8_t { ltoir, ptx, cubin, fatbin, object, library };

std::string_view to_string(LinkInputKind kind) noexcept;  // "ltoir", "ptx", "cubin", ...

class LinkInput {
 public:
  LinkInput() = default;  // no bytes: link() refuses it

  // An image kiln compiled: LTO-IR, PTX or a (relocatable, -rdc) CUBIN. Shares the artifact's bytes;
  // its identity in a link key is the artifact's cache key, so no byte is hashed again.
  static LinkInput from_artifact(const Artifact& artifact, std::string name = {});
  // Bytes from elsewhere; the identity is their SHA-256, computed here once.
  static LinkInput from_bytes(LinkInputKind kind, std::string name, std::string bytes);
  // A file, its kind from the extension (.ltoir/.lto, .ptx, .cubin, .fatbin, .o, .a) unless given.
  // Throws kiln::Error (Errc::invalid_argument) naming the file when it cannot be read or its kind
  // cannot be told.
  static LinkInput from_file(const std::filesystem::path& file, std::optional<LinkInputKind> kind = std::nullopt);

  LinkInputKind kind() const noexcept { return kind_; }
  const std::string& name() const noexcept { return name_; }  // how diagnostics name it
  std::string_view bytes() const noexcept;
  const CacheKey& identity() const noexcept { return identity_; }
  int arch() const noexcept { return arch_; }  // of an artifact; 0 when unknown

 private:
  LinkInputKind kind_ = LinkInputKind::ltoir;
  std::string name_;
  std::shared_ptr<const std::string> bytes_;
  CacheKey identity_;
  int arch_ = 0;
};

// nvJitLink's options, structured so that the link key can name each one.
struct LinkOptions {
  // -lto: optimise across inputs. Empty: on exactly when an input is LTO-IR (which requires it).
  std::optional<bool> lto;
  int optimization_level = 3;  // -O3; nvJitLink accepts only 0 and 3
  bool line_info = false;      // -lineinfo
  bool debug = false;          // -g
  int max_registers = 0;       // -maxrregcount=N; 0: no limit
  std::vector<std::string> kernels_used;  // -kernels-used=NAME: the others may be dropped (LTO only)
  std::vector<std::string> extra;         // anything else nvJitLink takes, verbatim, in order

  // nvJitLink's spelling for a link to `target` of inputs that do (or do not) include LTO-IR.
  // Throws kiln::Error (Errc::invalid_argument) for a virtual target, an optimisation level other than
  // 0 or 3, a negative register cap, PTX output without LTO, or LTO turned off with LTO-IR inputs.
  std::vector<std::string> to_nvjitlink(const Target& target, bool has_ltoir) const;
};

struct LinkJob {
  std::string name = "linked";  // the linked artifact's program_name; diagnostics name the job
  std::vector<LinkInput> inputs;
  LinkOptions options;
  // Carried into the artifact: the lowered names of the kernel that was compiled for this link.
  std::map<std::string, std::string> lowered_names;
};

enum class LinkProblem : std::uint8_t { undefined_symbol, duplicate_symbol, other };

// One message of nvJitLink's log, with the symbol and the input it concerns when kiln could tell.
struct LinkDiagnostic {
  Severity severity = Severity::error;
  LinkProblem problem = LinkProblem::other;
  std::string symbol;                // "missing_fn"; empty when the message names none
  std::vector<std::string> inputs;   // inputs it concerns: where the symbol is defined twice or
                                     // referenced but undefined, or the input the message names
  std::string message;               // nvJitLink's own line

  // "kernel.ltoir: error: undefined symbol 'missing_fn'" then nvJitLink's line, indented.
  std::string format() const;
};

// Parses nvJitLink's error log: each message, its symbol and the inputs it names. An undefined
// symbol nvJitLink names no input for is attributed to the PTX and CUBIN inputs that hold its name.
// (LTO-IR is opaque: link() asks nvJitLink about each LTO-IR input on its own after a failed link,
// to name those that reference an undefined symbol and both inputs that define one twice.) Lines
// that only repeat the failing call's name are dropped.
std::vector<LinkDiagnostic> parse_link_log(std::string_view log, std::span<const LinkInput> inputs);
std::string format_link_diagnostics(const std::vector<LinkDiagnostic>& diagnostics);

// A link nvJitLink accepted (artifact set: the image, kind cubin or ptx) or rejected (diagnostics).
struct LinkResult {
  std::optional<Artifact> artifact;
  std::vector<LinkDiagnostic> diagnostics;
  std::string log;  // nvJitLink's error log, then its info log
  std::string job_name;
  Target target;
  int status = 0;  // the nvJitLinkResult that failed the link (0 when ok)

  bool ok() const noexcept { return artifact.has_value(); }
  // The artifact, or kiln::Error (Errc::link_failed) naming each symbol and input.
  const Artifact& value() const;
  Error error() const;  // the error value() would throw; requires !ok()
};

struct LinkSettings {
  std::optional<CacheKey> key;  // recorded in the artifact; else computed here
};

// Links with nvJitLink. Inputs nvJitLink rejects are a LinkResult with !ok(); kiln::Error is thrown
// for what is not the inputs' fault: no inputs or an empty one, malformed options (Errc), an option
// nvJitLink does not know (Domain::nvjitlink, NVJITLINK_ERROR_UNRECOGNIZED_OPTION, with its log),
// nvJitLink missing (Errc::nvjitlink_not_found), or LTO-IR inputs with an nvJitLink whose version
// cannot read what the loaded NVRTC writes (Errc::version_mismatch, saying so).
LinkResult link(const LinkJob& job, const Target& target, const LinkSettings& settings = {});

// What the link key depends on besides the job: which nvJitLink links.
struct LinkKeyContext {
  int nvjitlink_cuda_version = 0;  // 13000; 0 where the file's identity stands for it
  // The library file's real path, size, modification time and inode: another nvJitLink, or the
  // same file rewritten, makes other keys. Found without loading nvJitLink, so that a link-cache hit
  // never loads it (a 100 MB dlopen).
  std::string nvjitlink_file;

  // The identity of the file the process-wide search would load (driver::locate_nvjitlink), or,
  // when it cannot be located without loading, the loaded library's version and path. Throws
  // Errc::nvjitlink_not_found when there is none.
  static LinkKeyContext current();
};

// SHA-256 over kiln's cache format version, nvJitLink's identity, the target, every option and every
// input's kind, name and identity, in order (order can decide which of two weak definitions wins).
CacheKey link_key(const LinkJob& job, const Target& target, const LinkKeyContext& context);
CacheKey link_key(const LinkJob& job, const Target& target);

}  // namespace kiln::jit
