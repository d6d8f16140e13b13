// Thin helpers over dlopen: open with the reason for failure, the real path of what opened, and
// where a bare library name would be found, without opening it.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "kiln/driver/error.hpp"

namespace kiln::driver::detail {

struct Opened {
  void* handle = nullptr;  // null on failure
  std::string error;       // dlerror() text on failure
};

// RTLD_NOW | RTLD_LOCAL. The handle is never closed: kiln's tables point into the library.
Opened open_library(const std::string& file);

// Real path (links resolved) of the file behind a dlopen handle.
std::string real_path_of(void* handle);

void* find_symbol(void* handle, const char* name);

std::string getenv_or_empty(const char* name);

// Real path of the library already in this process under `soname`, without loading anything.
std::optional<std::string> loaded_path_of(const std::string& soname);

// The folders, in order, that open_library(bare name) searches: the RPATH/RUNPATH and
// LD_LIBRARY_PATH the dynamic loader applies to kiln's own code (dlinfo RTLD_DI_SERINFO), then the
// folders of /etc/ld.so.conf standing in for /etc/ld.so.cache, then the system folders.
std::vector<std::string> dlopen_search_dirs();

// The real path of the first candidate that open_library would find, without loading anything: a
// path that exists, or a bare name already loaded or present in dlopen_search_dirs().
std::optional<std::string> locate_first(const std::vector<std::string>& candidates);

// A library opened with its entry points resolved.
template <typename Api>
struct OpenedApi {
  void* handle = nullptr;
  Api api;
};

// Opens the candidates in order until one loads, noting each attempt in `tried`; `resolve(handle)`
// gives the Api or the name of a required entry point it lacks. One that loads but lacks an entry
// point is an error (Errc::symbol_missing, "... is not a usable <what>"), not a reason to go on.
// None: no candidate loaded.
template <typename Api, typename Resolve>
std::optional<OpenedApi<Api>> open_first(const std::vector<std::string>& candidates, Resolve&& resolve,
                                         const std::string& what, std::vector<std::string>& tried) {
  for (const std::string& candidate : candidates) {
    // An absolute candidate that is not there is noted without asking the loader.
    std::error_code ec;
    if (candidate.find('/') != std::string::npos && !std::filesystem::exists(candidate, ec)) {
      tried.push_back(candidate + ": no such file");
      continue;
    }
    Opened lib = open_library(candidate);
    if (!lib.handle) {
      tried.push_back(candidate + ": " + lib.error);
      continue;
    }
    std::variant<Api, std::string> resolved = resolve(lib.handle);
    if (auto* missing = std::get_if<std::string>(&resolved)) {
      tried.push_back(candidate + ": lacks " + *missing);
      throw Error(Errc::symbol_missing,
                  real_path_of(lib.handle) + " is not a usable " + what + ": it lacks " + *missing);
    }
    return OpenedApi<Api>{lib.handle, std::move(std::get<Api>(resolved))};
  }
  return std::nullopt;
}

// Why open_first found nothing: what `path_variable` named, or that nothing was found, then every
// attempt in order.
std::string not_found_detail(const std::string& what, const char* path_variable,
                             const std::optional<std::string>& explicit_path, const std::vector<std::string>& tried);

}  // namespace kiln::driver::detail
