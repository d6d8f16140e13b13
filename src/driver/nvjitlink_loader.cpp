#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <variant>

#include "driver/detail/dynamic_library.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/environment.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/driver/nvjitlink_api.hpp"
#include "kiln/driver/nvrtc_api.hpp"

namespace kiln::driver {
namespace {

namespace fs = std::filesystem;

// Newest first, like NVRTC's.
constexpr const char* kSonames[] = {"libnvJitLink.so.13", "libnvJitLink.so.12"};
// The versions whose symbol names nvJitLink.h maps the API to (__nvJitLinkCreate_13_0).
constexpr const char* kSymbolVersions[] = {"_13_0", "_12_0"};

template <typename Fn>
struct AbsentEntryStub;
template <typename... Args>
struct AbsentEntryStub<nvJitLinkResult (*)(Args...)> {
  static nvJitLinkResult call(Args...) { return NVJITLINK_ERROR_INTERNAL; }
};
template <typename Fn>
void stub_absent(Fn& fn) {
  if constexpr (requires { &AbsentEntryStub<Fn>::call; }) fn = &AbsentEntryStub<Fn>::call;
}

void* find_entry(void* handle, const std::string& name) {
  for (const char* version : kSymbolVersions)
    if (void* p = detail::find_symbol(handle, ("__" + name + version).c_str())) return p;
  return detail::find_symbol(handle, name.c_str());
}

std::variant<NvJitLinkApi, std::string> resolve(void* handle) {
  NvJitLinkApi api;
#define KILN_NVJITLINK_FN(name, required)                                 \
  api.name = reinterpret_cast<decltype(&::name)>(find_entry(handle, #name)); \
  if (!api.name) {                                                       \
    if (required) return std::string(#name);                             \
    api.absent.push_back(#name);                                         \
    stub_absent(api.name);                                               \
  }
#include "kiln/driver/nvjitlink_functions.def"
#undef KILN_NVJITLINK_FN
  return api;
}

std::vector<std::string> candidates_in(const fs::path& folder) {
  std::vector<std::string> out;
  for (const char* soname : kSonames) out.push_back((folder / soname).string());
  return out;
}

}  // namespace

bool NvJitLinkApi::has(const char* name) const {
  return std::find(absent.begin(), absent.end(), name) == absent.end();
}

NvJitLinkSearch NvJitLinkSearch::from_environment() {
  NvJitLinkSearch s;
  if (std::string p = detail::getenv_or_empty("KILN_NVJITLINK_PATH"); !p.empty()) s.explicit_path = p;
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (std::string root = detail::getenv_or_empty(var); !root.empty()) s.toolkit_roots.push_back(root);
  if (!built_toolkit_root().empty()) s.toolkit_roots.push_back(built_toolkit_root());
  return s;
}

std::vector<std::string> nvjitlink_candidates(const NvJitLinkSearch& search) {
  std::vector<std::string> candidates;
  if (search.explicit_path) {
    const fs::path p = *search.explicit_path;
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      candidates = candidates_in(p);
      candidates.push_back((p / "libnvJitLink.so").string());
    } else {
      candidates.push_back(p.string());
    }
    return candidates;
  }
  for (const std::string& root : search.toolkit_roots)
    for (const char* sub : {"lib64", "lib", "targets/x86_64-linux/lib", "targets/sbsa-linux/lib"})
      for (auto& c : candidates_in(fs::path(root) / sub)) candidates.push_back(std::move(c));
  if (search.use_loader_path)
    for (const char* soname : kSonames) candidates.emplace_back(soname);
  return candidates;
}

std::optional<std::string> locate_nvjitlink(const NvJitLinkSearch& search) {
  return detail::locate_first(nvjitlink_candidates(search));
}

NvJitLinkLibrary open_nvjitlink(const NvJitLinkSearch& search) {
  NvJitLinkLibrary out;
  out.library.name = "nvJitLink";
  std::vector<std::string> names(std::begin(kSonames), std::end(kSonames));
  out.library.copies =
      find_library_copies(loader_search_dirs(detail::getenv_or_empty("LD_LIBRARY_PATH")), names);

  auto opened =
      detail::open_first<NvJitLinkApi>(nvjitlink_candidates(search), resolve, "nvJitLink", out.library.tried);
  if (!opened)
    throw Error(Errc::nvjitlink_not_found, detail::not_found_detail("nvJitLink", "KILN_NVJITLINK_PATH",
                                                                    search.explicit_path, out.library.tried));
  out.api = std::move(opened->api);
  out.handle = opened->handle;
  out.library.path = detail::real_path_of(opened->handle);
  unsigned major = 0, minor = 0;
  if (out.api.has("nvJitLinkVersion") && out.api.nvJitLinkVersion(&major, &minor) == NVJITLINK_SUCCESS) {
    out.version = {static_cast<int>(major), static_cast<int>(minor)};
    out.library.version = std::to_string(major) + "." + std::to_string(minor);
  } else {
    out.library.version = "12.0-12.2 (no nvJitLinkVersion)";
  }
  out.library.loaded = true;
  return out;
}

namespace {

struct NvJitLinkOnce {
  std::unique_ptr<NvJitLinkLibrary> library;
  std::unique_ptr<Error> failure;
  LoadedLibrary info;
};

const NvJitLinkOnce& nvjitlink_once() {
  static const NvJitLinkOnce once = [] {
    NvJitLinkOnce o;
    try {
      o.library = std::make_unique<NvJitLinkLibrary>(open_nvjitlink(NvJitLinkSearch::from_environment()));
      o.info = o.library->library;
    } catch (const Error& e) {
      o.failure = std::make_unique<Error>(e);
      o.info.name = "nvJitLink";
      o.info.failure = e.detail();
    }
    return o;
  }();
  return once;
}

}  // namespace

const NvJitLinkLibrary& nvjitlink_library() {
  const NvJitLinkOnce& o = nvjitlink_once();
  if (o.failure) throw *o.failure;
  return *o.library;
}

const NvJitLinkApi& nvjitlink() { return nvjitlink_library().api; }

const LoadedLibrary& nvjitlink_info() noexcept { return nvjitlink_once().info; }

std::optional<std::string> lto_version_mismatch(int nvrtc_cuda_version, int nvjitlink_cuda_version) {
  if (nvrtc_cuda_version <= 0 || nvjitlink_cuda_version <= 0) return std::nullopt;
  const int nvrtc_major = nvrtc_cuda_version / 1000, link_major = nvjitlink_cuda_version / 1000;
  if (nvrtc_major == link_major && nvjitlink_cuda_version >= nvrtc_cuda_version) return std::nullopt;
  const std::string nvrtc = format_cuda_version(nvrtc_cuda_version);
  const std::string link = format_cuda_version(nvjitlink_cuda_version);
  if (nvrtc_major != link_major)
    return "nvJitLink " + link + " and NVRTC " + nvrtc +
           " are of different major versions: nvJitLink rejects LTO-IR from another major version, so "
           "linking LTO-IR this NVRTC wrote fails (PTX and CUBIN inputs still link). Use the nvJitLink of "
           "NVRTC's toolkit (KILN_NVJITLINK_PATH) or the NVRTC of nvJitLink's (KILN_NVRTC_PATH).";
  return "nvJitLink " + link + " is older than NVRTC " + nvrtc +
         ": it cannot read LTO-IR written by a newer NVRTC, so linking LTO-IR fails (PTX and CUBIN inputs "
         "still link). Use an nvJitLink of at least " + nvrtc + " (KILN_NVJITLINK_PATH).";
}

}  // namespace kiln::driver
