#include "kiln/jit/compiler.hpp"

#include <cstdlib>
#include <filesystem>
#include <optional>

#include "kiln/driver/check.hpp"
#include "kiln/driver/environment.hpp"
#include "kiln/driver/nvrtc_api.hpp"

namespace kiln::jit {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Owns one nvrtcProgram; destroying it never throws.
class NvrtcProgram {
 public:
  NvrtcProgram(const driver::NvrtcApi& api, const Program& program) : api_(api) {
    std::vector<const char*> names, texts;
    for (const auto& [name, text] : program.headers) {
      names.push_back(name.c_str());
      texts.push_back(text.c_str());
    }
    driver::check(api_.nvrtcCreateProgram(&handle_, program.source.c_str(), program.name.c_str(),
                                          static_cast<int>(names.size()), texts.data(), names.data()),
                  "nvrtcCreateProgram");
  }
  ~NvrtcProgram() { api_.nvrtcDestroyProgram(&handle_); }
  NvrtcProgram(const NvrtcProgram&) = delete;
  NvrtcProgram& operator=(const NvrtcProgram&) = delete;
  nvrtcProgram get() const { return handle_; }

 private:
  const driver::NvrtcApi& api_;
  nvrtcProgram handle_ = nullptr;
};

void refuse_nul(std::string_view text, const std::string& what) {
  if (auto at = text.find('\0'); at != std::string_view::npos)
    throw Error(Errc::invalid_argument, what + " contains a NUL byte at offset " + std::to_string(at) +
                                            "; NVRTC would silently ignore everything after it");
}

std::string read_log(const driver::NvrtcApi& api, nvrtcProgram program) {
  std::size_t size = 0;
  driver::check(api.nvrtcGetProgramLogSize(program, &size), "nvrtcGetProgramLogSize");
  std::string log(size, '\0');
  if (size > 0) driver::check(api.nvrtcGetProgramLog(program, log.data()), "nvrtcGetProgramLog");
  while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
  return log;
}

std::string read_image(const driver::NvrtcApi& api, nvrtcProgram program, ImageKind kind) {
  std::size_t size = 0;
  std::string image;
  if (kind == ImageKind::cubin) {
    driver::check(api.nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize");
    image.resize(size);
    driver::check(api.nvrtcGetCUBIN(program, image.data()), "nvrtcGetCUBIN");
  } else if (kind == ImageKind::ltoir) {
    if (!api.has("nvrtcGetLTOIR"))
      throw Error(Errc::symbol_missing, "this NVRTC lacks nvrtcGetLTOIR (CUDA 12.0+): it cannot write LTO-IR");
    driver::check(api.nvrtcGetLTOIRSize(program, &size), "nvrtcGetLTOIRSize");
    image.resize(size);
    driver::check(api.nvrtcGetLTOIR(program, image.data()), "nvrtcGetLTOIR");
  } else {
    driver::check(api.nvrtcGetPTXSize(program, &size), "nvrtcGetPTXSize");
    image.resize(size);
    driver::check(api.nvrtcGetPTX(program, image.data()), "nvrtcGetPTX");
    while (!image.empty() && image.back() == '\0') image.pop_back();  // std::string keeps one
  }
  return image;
}

// <root>/include and <root>/include/cccl, when the root holds include/cuda.h.
std::optional<std::vector<std::string>> include_dirs_under(const fs::path& root) {
  std::error_code ec;
  fs::path include = root / "include";
  if (!fs::exists(include / "cuda.h", ec)) return std::nullopt;
  std::vector<std::string> dirs{fs::weakly_canonical(include, ec).string()};
  if (fs::is_directory(include / "cccl", ec)) dirs.push_back(fs::weakly_canonical(include / "cccl", ec).string());
  return dirs;
}

std::vector<std::string> find_toolkit_include_dirs() {
  std::vector<std::string> roots;
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (const char* v = std::getenv(var); v && *v) roots.emplace_back(v);
  if (!driver::built_toolkit_root().empty()) roots.push_back(driver::built_toolkit_root());
  for (const auto& root : roots)
    if (auto dirs = include_dirs_under(root)) return *dirs;
  // Last, the toolkit NVRTC comes from. Its file is found without loading it (the key needs these
  // folders, and a cache hit must not load NVRTC); only when that fails is it loaded to ask.
  std::optional<std::string> library = driver::nvrtc_location();
  if (!library)
    if (const auto& info = driver::nvrtc_info(); info.loaded) library = info.path;
  if (!library) return {};
  // <root>/lib64/libnvrtc.so.13 or <root>/targets/<arch>-linux/lib/libnvrtc.so.13
  const fs::path folder = fs::path(*library).parent_path();
  for (const fs::path& root : {folder.parent_path(), folder.parent_path().parent_path().parent_path()})
    if (auto dirs = include_dirs_under(root)) return *dirs;
  return {};
}

}  // namespace

const std::vector<std::string>& toolkit_include_dirs() {
  static const std::vector<std::string> dirs = find_toolkit_include_dirs();
  return dirs;
}

Error CompileResult::error() const {
  std::string detail = "program '" + program_name + "' did not compile for " + target.arch_name() + ":\n";
  detail += diagnostics.empty() ? log + "\n" : format_diagnostics(diagnostics);
  detail.pop_back();  // the final newline: Error's message continues after the detail
  return Error(Errc::compile_failed, std::move(detail));
}

const Artifact& CompileResult::value() const {
  if (!artifact) throw error();
  return *artifact;
}

CompileResult compile(const Program& program, const Target& target, const CompileSettings& settings) {
  refuse_nul(program.source, "the source of program '" + program.name + "'");
  for (const auto& [name, text] : program.headers) {
    refuse_nul(name, "a header name of program '" + program.name + "'");
    refuse_nul(text, "header '" + name + "' of program '" + program.name + "'");
  }
  for (const auto& expr : program.name_expressions) refuse_nul(expr, "a name expression");

  std::vector<std::string> options{target.nvrtc_option()};
  if (target.kind == ImageKind::ltoir) options.emplace_back("-dlto");  // implies -rdc=true
  for (auto& o : program.options.to_nvrtc()) options.push_back(std::move(o));
  for (const auto& dir : program.include_dirs) options.push_back("-I" + dir);
  for (const auto& dir : toolkit_include_dirs()) options.push_back("-I" + dir);
  if (!settings.pch_dir.empty()) {
    options.emplace_back("-pch");
    options.push_back("--pch-dir=" + settings.pch_dir);
  }
  for (const auto& o : options) refuse_nul(o, "option '" + o + "'");
  std::vector<const char*> argv;
  for (const auto& o : options) argv.push_back(o.c_str());

  const driver::NvrtcApi& api = driver::nvrtc();
  // An NVRTC of another toolkit (KILN_NVRTC_PATH, CUDA_HOME) may not know the architecture: say so,
  // rather than pass on its "invalid value for --gpu-architecture".
  const driver::NvrtcLibrary& library = driver::nvrtc_library();
  if (auto why = driver::arch_unsupported_by_nvrtc(target.arch, library.version.as_cuda_version(), library.supported_archs))
    throw Error(Errc::version_mismatch, "program '" + program.name + "' cannot be compiled for " + target.arch_name() +
                                            ": " + *why);
  const auto start = Clock::now();
  NvrtcProgram nvrtc_program(api, program);
  for (const auto& expr : program.name_expressions)
    driver::check(api.nvrtcAddNameExpression(nvrtc_program.get(), expr.c_str()), "nvrtcAddNameExpression");
  const nvrtcResult status =
      api.nvrtcCompileProgram(nvrtc_program.get(), static_cast<int>(argv.size()), argv.data());

  CompileResult result;
  result.program_name = program.name;
  result.target = target;
  result.log = read_log(api, nvrtc_program.get());
  result.diagnostics = parse_nvrtc_log(result.log);
  if (status == NVRTC_ERROR_COMPILATION || status == NVRTC_ERROR_INVALID_OPTION) {
    if (result.diagnostics.empty())
      result.diagnostics.push_back(Diagnostic{program.name, 0, 0, Severity::error, {},
                                              "NVRTC refused the program (" +
                                                  std::string(api.nvrtcGetErrorString(status)) + ")" +
                                                  (result.log.empty() ? "" : ": " + result.log),
                                              {}, {}});
    return result;
  }
  driver::check(status, "nvrtcCompileProgram");

  ArtifactContents contents;
  contents.kind = target.kind;
  contents.arch = target.arch;
  contents.program_name = program.name;
  contents.image = read_image(api, nvrtc_program.get(), target.kind);
  for (const auto& expr : program.name_expressions) {
    const char* lowered = nullptr;
    driver::check(api.nvrtcGetLoweredName(nvrtc_program.get(), expr.c_str(), &lowered), "nvrtcGetLoweredName");
    contents.lowered_names.emplace(expr, lowered);
  }
  contents.compile_time = Clock::now() - start;
  contents.key = settings.key ? *settings.key : cache_key(program, target);
  contents.log = result.log;
  contents.diagnostics = result.diagnostics;
  result.artifact.emplace(std::move(contents), Origin::compiled);
  return result;
}

}  // namespace kiln::jit
