#include <algorithm>
#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <variant>

#include "driver/detail/dynamic_library.hpp"
#include "kiln/driver/environment.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/driver/nvrtc_api.hpp"
#include "kiln/version.hpp"

namespace kiln::driver {
namespace {

namespace fs = std::filesystem;

// Newest first: kiln is built against CUDA 13 and runs with 12 too.
constexpr const char* kSonames[] = {"libnvrtc.so.13", "libnvrtc.so.12"};

template <typename Fn>
struct AbsentEntryStub;
template <typename... Args>
struct AbsentEntryStub<nvrtcResult (*)(Args...)> {
  static nvrtcResult call(Args...) { return NVRTC_ERROR_INTERNAL_ERROR; }
};
template <typename Fn>
void stub_absent(Fn& fn) {
  if constexpr (requires { &AbsentEntryStub<Fn>::call; }) fn = &AbsentEntryStub<Fn>::call;
}

std::vector<std::string> candidates_in(const fs::path& folder) {
  std::vector<std::string> out;
  for (const char* soname : kSonames) out.push_back((folder / soname).string());
  return out;
}

std::vector<std::string> candidates_under_root(const fs::path& root) {
  std::vector<std::string> out;
  for (const char* sub : {"lib64", "lib", "targets/x86_64-linux/lib", "targets/sbsa-linux/lib"})
    for (auto& c : candidates_in(root / sub)) out.push_back(std::move(c));
  return out;
}

// Resolves every entry point; the error names the first required one that is missing.
std::variant<NvrtcApi, std::string> resolve(void* handle) {
  NvrtcApi api;
#define KILN_NVRTC_FN(name, required)                                              \
  api.name = reinterpret_cast<decltype(&::name)>(detail::find_symbol(handle, #name)); \
  if (!api.name) {                                                                \
    if (required) return std::string(#name);                                      \
    api.absent.push_back(#name);                                                  \
    stub_absent(api.name);                                                        \
  }
#include "kiln/driver/nvrtc_functions.def"
#undef KILN_NVRTC_FN
  return api;
}

}  // namespace

bool NvrtcApi::has(const char* name) const {
  return std::find(absent.begin(), absent.end(), name) == absent.end();
}

std::string built_toolkit_root() { return KILN_BUILD_CUDA_ROOT; }

NvrtcSearch NvrtcSearch::from_environment() {
  NvrtcSearch s;
  if (std::string p = detail::getenv_or_empty("KILN_NVRTC_PATH"); !p.empty()) s.explicit_path = p;
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (std::string root = detail::getenv_or_empty(var); !root.empty()) s.toolkit_roots.push_back(root);
  if (!built_toolkit_root().empty()) s.toolkit_roots.push_back(built_toolkit_root());
  return s;
}

std::vector<std::string> nvrtc_candidates(const NvrtcSearch& search) {
  std::vector<std::string> candidates;
  if (search.explicit_path) {
    const fs::path p = *search.explicit_path;
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      candidates = candidates_in(p);
      candidates.push_back((p / "libnvrtc.so").string());
    } else {
      candidates.push_back(p.string());
    }
  } else {
    for (const std::string& root : search.toolkit_roots)
      for (auto& c : candidates_under_root(root)) candidates.push_back(std::move(c));
    if (search.use_loader_path)
      for (const char* soname : kSonames) candidates.emplace_back(soname);
  }
  return candidates;
}

std::optional<std::string> locate_nvrtc(const NvrtcSearch& search) {
  return detail::locate_first(nvrtc_candidates(search));
}

NvrtcLibrary open_nvrtc(const NvrtcSearch& search) {
  NvrtcLibrary out;
  out.library.name = "NVRTC";
  std::vector<std::string> names;
  for (const char* soname : kSonames) names.emplace_back(soname);
  out.library.copies =
      find_library_copies(loader_search_dirs(detail::getenv_or_empty("LD_LIBRARY_PATH")), names);

  auto opened = detail::open_first<NvrtcApi>(nvrtc_candidates(search), resolve, "NVRTC", out.library.tried);
  if (!opened)
    throw Error(Errc::nvrtc_not_found,
                detail::not_found_detail("NVRTC", "KILN_NVRTC_PATH", search.explicit_path, out.library.tried));
  out.api = std::move(opened->api);
  out.handle = opened->handle;
  out.library.path = detail::real_path_of(opened->handle);
  out.api.nvrtcVersion(&out.version.major, &out.version.minor);
  out.library.version = std::to_string(out.version.major) + "." + std::to_string(out.version.minor);
  int n = 0;
  if (out.api.nvrtcGetNumSupportedArchs(&n) == NVRTC_SUCCESS && n > 0) {
    out.supported_archs.resize(static_cast<size_t>(n));
    out.api.nvrtcGetSupportedArchs(out.supported_archs.data());
  }
  out.library.loaded = true;
  return out;
}

namespace {

struct NvrtcOnce {
  std::unique_ptr<NvrtcLibrary> library;
  std::unique_ptr<Error> failure;
  LoadedLibrary info;
};

std::atomic<bool> g_nvrtc_loaded{false};

const NvrtcOnce& nvrtc_once() {
  static const NvrtcOnce once = [] {
    NvrtcOnce o;
    try {
      o.library = std::make_unique<NvrtcLibrary>(open_nvrtc(NvrtcSearch::from_environment()));
      o.info = o.library->library;
      g_nvrtc_loaded.store(true, std::memory_order_release);
    } catch (const Error& e) {
      o.failure = std::make_unique<Error>(e);
      o.info.name = "NVRTC";
      o.info.failure = e.detail();
    }
    return o;
  }();
  return once;
}

}  // namespace

const NvrtcLibrary& nvrtc_library() {
  const NvrtcOnce& o = nvrtc_once();
  if (o.failure) throw *o.failure;
  return *o.library;
}

const NvrtcApi& nvrtc() { return nvrtc_library().api; }

const LoadedLibrary& nvrtc_info() noexcept { return nvrtc_once().info; }

bool nvrtc_loaded() noexcept { return g_nvrtc_loaded.load(std::memory_order_acquire); }

std::optional<std::string> nvrtc_location() {
  if (nvrtc_loaded()) return nvrtc_info().path;
  // Located once, like the library itself: the environment it was read from is the process's.
  static const std::optional<std::string> located = locate_nvrtc(NvrtcSearch::from_environment());
  return located;
}

}  // namespace kiln::driver
