#include "kiln/jit/linker.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <fstream>
#include <sstream>

#include "jit/detail/sha256.hpp"
#include "kiln/driver/nvjitlink_api.hpp"
#include "kiln/driver/nvrtc_api.hpp"

namespace kiln::jit {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

nvJitLinkInputType input_type(LinkInputKind kind) {
  switch (kind) {
    case LinkInputKind::ltoir: return NVJITLINK_INPUT_LTOIR;
    case LinkInputKind::ptx: return NVJITLINK_INPUT_PTX;
    case LinkInputKind::cubin: return NVJITLINK_INPUT_CUBIN;
    case LinkInputKind::fatbin: return NVJITLINK_INPUT_FATBIN;
    case LinkInputKind::object: return NVJITLINK_INPUT_OBJECT;
    case LinkInputKind::library: return NVJITLINK_INPUT_LIBRARY;
  }
  return NVJITLINK_INPUT_ANY;
}

std::optional<LinkInputKind> kind_of_extension(const fs::path& file) {
  const std::string ext = file.extension().string();
  if (ext == ".ltoir" || ext == ".lto" || ext == ".nvvm") return LinkInputKind::ltoir;
  if (ext == ".ptx") return LinkInputKind::ptx;
  if (ext == ".cubin") return LinkInputKind::cubin;
  if (ext == ".fatbin") return LinkInputKind::fatbin;
  if (ext == ".o") return LinkInputKind::object;
  if (ext == ".a") return LinkInputKind::library;
  return std::nullopt;
}

// Throws kiln::Error in nvJitLink's domain, with the handle's error log when it has one.
void check_link_call(const driver::NvJitLinkApi& api, nvJitLinkHandle handle, nvJitLinkResult status,
                     const char* call);

std::string read_log(const driver::NvJitLinkApi& api, nvJitLinkHandle handle, bool error_log) {
  if (!handle) return {};
  std::size_t size = 0;
  const nvJitLinkResult got =
      error_log ? api.nvJitLinkGetErrorLogSize(handle, &size) : api.nvJitLinkGetInfoLogSize(handle, &size);
  if (got != NVJITLINK_SUCCESS || size == 0) return {};
  std::string log(size, '\0');
  const nvJitLinkResult read =
      error_log ? api.nvJitLinkGetErrorLog(handle, log.data()) : api.nvJitLinkGetInfoLog(handle, log.data());
  if (read != NVJITLINK_SUCCESS) return {};
  while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
  return log;
}

void check_link_call(const driver::NvJitLinkApi& api, nvJitLinkHandle handle, nvJitLinkResult status,
                     const char* call) {
  if (status == NVJITLINK_SUCCESS) return;
  throw Error(Domain::nvjitlink, status, call, read_log(api, handle, true));
}

// Owns one nvJitLinkHandle; destroying it never throws.
class LinkHandle {
 public:
  LinkHandle(const driver::NvJitLinkApi& api, const std::vector<std::string>& options) : api_(api) {
    std::vector<const char*> argv;
    for (const auto& o : options) argv.push_back(o.c_str());
    const nvJitLinkResult status =
        api_.nvJitLinkCreate(&handle_, static_cast<std::uint32_t>(argv.size()), argv.data());
    if (status != NVJITLINK_SUCCESS) {
      std::string log = read_log(api_, handle_, true);
      std::string detail = "options:";
      for (const auto& o : options) detail += " " + o;
      if (!log.empty()) detail += "\n" + log;
      if (handle_) api_.nvJitLinkDestroy(&handle_);
      throw Error(Domain::nvjitlink, status, "nvJitLinkCreate", detail);
    }
  }
  ~LinkHandle() {
    if (handle_) api_.nvJitLinkDestroy(&handle_);
  }
  LinkHandle(const LinkHandle&) = delete;
  LinkHandle& operator=(const LinkHandle&) = delete;
  nvJitLinkHandle get() const { return handle_; }

 private:
  const driver::NvJitLinkApi& api_;
  nvJitLinkHandle handle_ = nullptr;
};

bool is_ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$' || c == '.'; }

// Whether `bytes` holds `symbol` as a whole name (not inside a longer one).
bool mentions(std::string_view bytes, std::string_view symbol) {
  if (symbol.empty()) return false;
  for (std::size_t at = bytes.find(symbol); at != std::string_view::npos; at = bytes.find(symbol, at + 1)) {
    const bool left = at == 0 || !is_ident_char(bytes[at - 1]);
    const std::size_t end = at + symbol.size();
    const bool right = end == bytes.size() || !is_ident_char(bytes[end]);
    if (left && right) return true;
  }
  return false;
}

// The text between the quotes after `marker`, or empty.
std::string quoted_after(std::string_view line, std::string_view marker) {
  const std::size_t at = line.find(marker);
  if (at == std::string_view::npos) return {};
  const std::size_t open = line.find('\'', at + marker.size());
  if (open == std::string_view::npos) return {};
  const std::size_t close = line.find('\'', open + 1);
  if (close == std::string_view::npos) return {};
  return std::string(line.substr(open + 1, close - open - 1));
}

// Lines that only repeat which call failed ("ERROR NVJITLINK_ERROR_PTX_COMPILE: JIT the PTX
// (ltoPtx)", "ERROR 9: finish", "ERROR in nvvmCompileProgram: NVVM_ERROR_COMPILATION").
bool is_noise(std::string_view line) {
  if (line.starts_with("ERROR NVJITLINK_ERROR_") || line.starts_with("ERROR in nvvmCompileProgram")) return true;
  if (line.starts_with("ERROR ") && line.ends_with(": finish")) return true;
  return false;
}

std::string hex_identity(const LinkInput& input) { return input.identity().hex(); }

// A link of `inputs` alone to PTX under LTO (no ptxas, so undefined externs do not fail it): its
// PTX, or nullopt with `log` when it fails. Used only to explain a failed link.
std::optional<std::string> ptx_of(const driver::NvJitLinkApi& api, const std::vector<const LinkInput*>& inputs,
                                  int arch, std::string& log) {
  const std::vector<std::string> options{"-arch=sm_" + std::to_string(arch), "-lto", "-ptx"};
  std::vector<const char*> argv;
  for (const auto& o : options) argv.push_back(o.c_str());
  nvJitLinkHandle handle = nullptr;
  if (api.nvJitLinkCreate(&handle, static_cast<std::uint32_t>(argv.size()), argv.data()) != NVJITLINK_SUCCESS) {
    if (handle) api.nvJitLinkDestroy(&handle);
    return std::nullopt;
  }
  bool ok = true;
  for (const LinkInput* in : inputs)
    ok = ok && api.nvJitLinkAddData(handle, input_type(in->kind()), in->bytes().data(), in->bytes().size(),
                                    in->name().c_str()) == NVJITLINK_SUCCESS;
  ok = ok && api.nvJitLinkComplete(handle) == NVJITLINK_SUCCESS;
  std::optional<std::string> ptx;
  std::size_t size = 0;
  if (ok && api.nvJitLinkGetLinkedPtxSize(handle, &size) == NVJITLINK_SUCCESS) {
    ptx.emplace(size, '\0');
    if (api.nvJitLinkGetLinkedPtx(handle, ptx->data()) != NVJITLINK_SUCCESS) ptx.reset();
  }
  if (!ptx) log = read_log(api, handle, true);
  api.nvJitLinkDestroy(&handle);
  return ptx;
}

// LTO-IR is opaque (no symbol name is readable in it), and under LTO nvJitLink names no input for
// an undefined symbol and only the second of two definitions. Each LTO-IR input is asked on its
// own: linked alone to PTX, the inputs that reference the symbol declare it .extern; linked with
// the input nvJitLink named, another definition fails the pair the same way.
void attribute_lto_symbols(const driver::NvJitLinkApi& api, std::span<const LinkInput> inputs, int arch,
                           std::vector<LinkDiagnostic>& diagnostics) {
  for (LinkDiagnostic& d : diagnostics) {
    if (d.problem == LinkProblem::undefined_symbol && d.inputs.empty()) {
      for (const LinkInput& in : inputs) {
        if (in.kind() != LinkInputKind::ltoir) continue;
        std::string log;
        if (auto ptx = ptx_of(api, {&in}, arch, log); ptx && mentions(*ptx, d.symbol)) d.inputs.push_back(in.name());
      }
    } else if (d.problem == LinkProblem::duplicate_symbol && d.inputs.size() == 1) {
      const auto named = std::find_if(inputs.begin(), inputs.end(),
                                      [&](const LinkInput& in) { return in.name() == d.inputs[0]; });
      if (named == inputs.end() || named->kind() != LinkInputKind::ltoir) continue;
      std::vector<std::string> definers;
      for (const LinkInput& in : inputs) {
        if (&in == &*named) {
          definers.push_back(in.name());
          continue;
        }
        if (in.kind() != LinkInputKind::ltoir) continue;
        std::string log;
        if (!ptx_of(api, {&in, &*named}, arch, log) && log.find("multiply defined") != std::string::npos &&
            mentions(log, d.symbol))
          definers.push_back(in.name());
      }
      d.inputs = std::move(definers);
    }
  }
}

}  // namespace

std::string_view to_string(LinkInputKind kind) noexcept {
  switch (kind) {
    case LinkInputKind::ltoir: return "ltoir";
    case LinkInputKind::ptx: return "ptx";
    case LinkInputKind::cubin: return "cubin";
    case LinkInputKind::fatbin: return "fatbin";
    case LinkInputKind::object: return "object";
    case LinkInputKind::library: return "library";
  }
  return "ltoir";
}

// ---------------------------------------------------------------- inputs

LinkInput LinkInput::from_artifact(const Artifact& artifact, std::string name) {
  LinkInput in;
  switch (artifact.kind()) {
    case ImageKind::ltoir: in.kind_ = LinkInputKind::ltoir; break;
    case ImageKind::ptx: in.kind_ = LinkInputKind::ptx; break;
    case ImageKind::cubin: in.kind_ = LinkInputKind::cubin; break;
  }
  in.name_ = name.empty() ? artifact.program_name() + "." + std::string(to_string(artifact.kind())) : std::move(name);
  in.bytes_ = artifact.shared_image();
  in.arch_ = artifact.arch();
  if (artifact.key() == CacheKey{})
    in.identity_ = CacheKey{detail::sha256(*in.bytes_)};  // an artifact made by hand: no key to trust
  else
    in.identity_ = artifact.key();
  return in;
}

LinkInput LinkInput::from_bytes(LinkInputKind kind, std::string name, std::string bytes) {
  LinkInput in;
  in.kind_ = kind;
  in.name_ = std::move(name);
  in.identity_ = CacheKey{detail::sha256(bytes)};
  in.bytes_ = std::make_shared<const std::string>(std::move(bytes));
  return in;
}

LinkInput LinkInput::from_file(const fs::path& file, std::optional<LinkInputKind> kind) {
  if (!kind) kind = kind_of_extension(file);
  if (!kind)
    throw Error(Errc::invalid_argument, "cannot tell the link input kind of '" + file.string() +
                                            "' from its extension (.ltoir, .ptx, .cubin, .fatbin, .o, .a); give it");
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(Errc::invalid_argument, "cannot read link input '" + file.string() + "'");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error(Errc::invalid_argument, "cannot read link input '" + file.string() + "'");
  return from_bytes(*kind, file.filename().string(), std::move(text).str());
}

std::string_view LinkInput::bytes() const noexcept { return bytes_ ? std::string_view(*bytes_) : std::string_view(); }

// ---------------------------------------------------------------- options

std::vector<std::string> LinkOptions::to_nvjitlink(const Target& target, bool has_ltoir) const {
  if (target.kind == ImageKind::ltoir)
    throw Error(Errc::invalid_argument, "a link produces a CUBIN (sm_XX) or, with LTO, PTX; not LTO-IR (" +
                                            target.arch_name() + ")");
  if (target.arch <= 0) throw Error(Errc::invalid_argument, "link target architecture " + std::to_string(target.arch));
  if (optimization_level != 0 && optimization_level != 3)
    throw Error(Errc::invalid_argument, "nvJitLink accepts -O0 and -O3 only, not -O" + std::to_string(optimization_level));
  if (max_registers < 0)
    throw Error(Errc::invalid_argument, "register cap " + std::to_string(max_registers) + " is negative");
  const bool use_lto = lto.value_or(has_ltoir);
  if (has_ltoir && !use_lto)
    throw Error(Errc::invalid_argument, "LTO-IR inputs need -lto, but LinkOptions::lto turned it off");
  if (target.kind == ImageKind::ptx && !use_lto)
    throw Error(Errc::invalid_argument, "a link to PTX (" + target.arch_name() + ") needs LTO: give LTO-IR inputs");
  std::vector<std::string> out{"-arch=sm_" + std::to_string(target.arch)};
  if (use_lto) out.emplace_back("-lto");
  if (target.kind == ImageKind::ptx) out.emplace_back("-ptx");
  out.push_back("-O" + std::to_string(optimization_level));
  if (line_info) out.emplace_back("-lineinfo");
  if (debug) out.emplace_back("-g");
  if (max_registers > 0) out.push_back("-maxrregcount=" + std::to_string(max_registers));
  for (const auto& k : kernels_used) out.push_back("-kernels-used=" + k);
  for (const auto& e : extra) out.push_back(e);
  return out;
}

// ---------------------------------------------------------------- diagnostics

std::string LinkDiagnostic::format() const {
  std::string out;
  for (std::size_t i = 0; i < inputs.size(); ++i) out += (i ? ", " : "") + inputs[i];
  if (!out.empty()) out += ": ";
  out += std::string(to_string(severity)) + ": ";
  switch (problem) {
    case LinkProblem::undefined_symbol:
      out += "undefined symbol '" + symbol + "'" + (inputs.empty() ? "" : " (referenced here, defined by no input)");
      break;
    case LinkProblem::duplicate_symbol:
      out += "symbol '" + symbol + "' is defined more than once";
      break;
    case LinkProblem::other: out += message; return out + "\n";
  }
  return out + "\n  nvJitLink: " + message + "\n";
}

std::string format_link_diagnostics(const std::vector<LinkDiagnostic>& diagnostics) {
  std::string out;
  for (const auto& d : diagnostics) out += d.format();
  return out;
}

std::vector<LinkDiagnostic> parse_link_log(std::string_view log, std::span<const LinkInput> inputs) {
  std::vector<LinkDiagnostic> out;
  std::size_t start = 0;
  while (start < log.size()) {
    std::size_t end = log.find('\n', start);
    if (end == std::string_view::npos) end = log.size();
    std::string_view line = log.substr(start, end - start);
    start = end + 1;
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.remove_suffix(1);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.front()))) line.remove_prefix(1);
    if (line.empty() || is_noise(line)) continue;

    LinkDiagnostic d;
    d.message = std::string(line);
    if (line.find("fatal") != std::string_view::npos) d.severity = Severity::fatal;
    else if (line.starts_with("warning") || line.find(" warning ") != std::string_view::npos) d.severity = Severity::warning;
    else if (line.starts_with("info")) d.severity = Severity::remark;

    for (std::string_view marker : {"Unresolved extern function", "Unresolved extern variable", "Undefined reference to"})
      if (d.symbol.empty())
        if (std::string s = quoted_after(line, marker); !s.empty()) {
          d.symbol = std::move(s);
          d.problem = LinkProblem::undefined_symbol;
        }
    if (d.symbol.empty() && line.find("multiply defined") != std::string_view::npos) {
      d.symbol = quoted_after(line, "named");
      if (d.symbol.empty()) d.symbol = quoted_after(line, "");
      if (!d.symbol.empty()) d.problem = LinkProblem::duplicate_symbol;
    }
    if (d.problem == LinkProblem::duplicate_symbol && d.symbol.empty()) d.problem = LinkProblem::other;

    // The inputs the line names itself ("... in 'kernel.ptx'", "dup.ltoir: link error: ...").
    for (const LinkInput& in : inputs)
      if (!in.name().empty() && line.find(in.name()) != std::string_view::npos) d.inputs.push_back(in.name());
    if (d.problem == LinkProblem::undefined_symbol && d.inputs.empty()) {
      // Under LTO ptxas names no input: those whose bytes reference the symbol.
      for (const LinkInput& in : inputs)
        if (mentions(in.bytes(), d.symbol)) d.inputs.push_back(in.name());
    }
    if (d.severity == Severity::remark) continue;  // the info log's chatter is kept in the log only
    out.push_back(std::move(d));
  }
  return out;
}

// ---------------------------------------------------------------- results

Error LinkResult::error() const {
  std::string detail = "link '" + job_name + "' for " + target.arch_name() + " failed";
  if (const ErrorInfo* e = find_error(Domain::nvjitlink, status)) detail += " (" + std::string(e->name) + ")";
  detail += ":\n";
  detail += diagnostics.empty() ? log + "\n" : format_link_diagnostics(diagnostics);
  detail.pop_back();
  return Error(Errc::link_failed, std::move(detail));
}

const Artifact& LinkResult::value() const {
  if (!artifact) throw error();
  return *artifact;
}

// ---------------------------------------------------------------- the link

LinkResult link(const LinkJob& job, const Target& target, const LinkSettings& settings) {
  if (job.inputs.empty()) throw Error(Errc::invalid_argument, "link '" + job.name + "' has no inputs");
  bool has_ltoir = false;
  for (std::size_t i = 0; i < job.inputs.size(); ++i) {
    const LinkInput& in = job.inputs[i];
    if (in.bytes().empty())
      throw Error(Errc::invalid_argument, "link '" + job.name + "': input " + std::to_string(i) + " ('" + in.name() +
                                              "') holds no bytes");
    has_ltoir = has_ltoir || in.kind() == LinkInputKind::ltoir;
  }
  const std::vector<std::string> options = job.options.to_nvjitlink(target, has_ltoir);

  const driver::NvJitLinkLibrary& library = driver::nvjitlink_library();
  const driver::NvJitLinkApi& api = library.api;
  if (has_ltoir && driver::nvrtc_loaded())
    if (auto mismatch = driver::lto_version_mismatch(driver::nvrtc_library().version.as_cuda_version(),
                                                     library.version.as_cuda_version()))
      throw Error(Errc::version_mismatch, "link '" + job.name + "': " + *mismatch);

  const auto start = Clock::now();
  LinkHandle handle(api, options);
  LinkResult result;
  result.job_name = job.name;
  result.target = target;
  auto fail = [&](nvJitLinkResult status) {
    result.status = status;
    result.log = read_log(api, handle.get(), true);
    if (std::string info = read_log(api, handle.get(), false); !info.empty())
      result.log += (result.log.empty() ? "" : "\n") + info;
    result.diagnostics = parse_link_log(result.log, job.inputs);
    if (has_ltoir) attribute_lto_symbols(api, job.inputs, target.arch, result.diagnostics);
    if (result.diagnostics.empty())
      result.diagnostics.push_back(LinkDiagnostic{Severity::error, LinkProblem::other, {}, {},
                                                  "nvJitLink refused the link (" +
                                                      std::string(find_error(Domain::nvjitlink, status)
                                                                      ? find_error(Domain::nvjitlink, status)->name
                                                                      : "unknown") +
                                                      ")" + (result.log.empty() ? "" : ": " + result.log)});
  };
  for (const LinkInput& in : job.inputs) {
    const nvJitLinkResult added =
        api.nvJitLinkAddData(handle.get(), input_type(in.kind()), in.bytes().data(), in.bytes().size(), in.name().c_str());
    // nvJitLink accepts a Complete after a refused input (and links what it has): stop here.
    if (added != NVJITLINK_SUCCESS) {
      fail(added);
      for (LinkDiagnostic& d : result.diagnostics)
        if (d.inputs.empty()) d.inputs.push_back(in.name());
      return result;
    }
  }
  const nvJitLinkResult completed = api.nvJitLinkComplete(handle.get());
  if (completed != NVJITLINK_SUCCESS) {
    fail(completed);
    return result;
  }

  ArtifactContents contents;
  contents.kind = target.kind;
  contents.arch = target.arch;
  contents.program_name = job.name;
  std::size_t size = 0;
  if (target.kind == ImageKind::ptx) {
    check_link_call(api, handle.get(), api.nvJitLinkGetLinkedPtxSize(handle.get(), &size), "nvJitLinkGetLinkedPtxSize");
    contents.image.resize(size);
    check_link_call(api, handle.get(), api.nvJitLinkGetLinkedPtx(handle.get(), contents.image.data()), "nvJitLinkGetLinkedPtx");
    while (!contents.image.empty() && contents.image.back() == '\0') contents.image.pop_back();
  } else {
    check_link_call(api, handle.get(), api.nvJitLinkGetLinkedCubinSize(handle.get(), &size),
                    "nvJitLinkGetLinkedCubinSize");
    contents.image.resize(size);
    check_link_call(api, handle.get(), api.nvJitLinkGetLinkedCubin(handle.get(), contents.image.data()),
                    "nvJitLinkGetLinkedCubin");
  }
  contents.compile_time = Clock::now() - start;
  contents.lowered_names = job.lowered_names;
  result.log = read_log(api, handle.get(), false);
  contents.log = result.log;
  contents.key = settings.key ? *settings.key : link_key(job, target);
  result.artifact.emplace(std::move(contents), Origin::compiled);
  return result;
}

// ---------------------------------------------------------------- the key

LinkKeyContext LinkKeyContext::current() {
  if (auto file = driver::locate_nvjitlink(driver::NvJitLinkSearch::from_environment())) {
    struct stat st {};
    if (::stat(file->c_str(), &st) == 0)
      return LinkKeyContext{0, *file + "|" + std::to_string(st.st_size) + "|" + std::to_string(st.st_mtim.tv_sec) + "." +
                                   std::to_string(st.st_mtim.tv_nsec) + "|" + std::to_string(st.st_ino) + "|" +
                                   std::to_string(st.st_dev)};
  }
  const driver::NvJitLinkLibrary& library = driver::nvjitlink_library();
  return LinkKeyContext{library.version.as_cuda_version(), library.library.path};
}

CacheKey link_key(const LinkJob& job, const Target& target) { return link_key(job, target, LinkKeyContext::current()); }

CacheKey link_key(const LinkJob& job, const Target& target, const LinkKeyContext& context) {
  // Tagged, length-prefixed fields (like cache_key.cpp's), opened by a tag no compile key has.
  std::string bytes;
  auto field = [&](char tag, std::string_view value) {
    const std::uint64_t size = value.size();
    bytes.push_back(tag);
    bytes.append(reinterpret_cast<const char*>(&size), sizeof size);
    bytes.append(value);
  };
  auto number = [&](char tag, std::int64_t value) { field(tag, std::to_string(value)); };
  field('!', "nvjitlink-link");
  number('F', kCacheFormatVersion);
  number('J', context.nvjitlink_cuda_version);
  field('j', context.nvjitlink_file);
  field('K', to_string(target.kind));
  number('A', target.arch);
  field('N', job.name);
  const LinkOptions& o = job.options;
  number('t', o.lto ? (*o.lto ? 1 : 0) : -1);
  number('O', o.optimization_level);
  number('l', o.line_info);
  number('g', o.debug);
  number('r', o.max_registers);
  for (const auto& k : o.kernels_used) field('k', k);
  for (const auto& e : o.extra) field('X', e);
  for (const LinkInput& in : job.inputs) {  // in order
    field('i', to_string(in.kind()));
    field('n', in.name());
    field('#', hex_identity(in));
  }
  for (const auto& [expr, lowered] : job.lowered_names) {
    field('E', expr);
    field('e', lowered);
  }
  return CacheKey{detail::sha256(bytes)};
}

}  // namespace kiln::jit
