// Thin helpers over dlopen: open with the reason for failure, the real path of what opened, and
// where a bare library name would be found, without opening it.
#pragma once

#include <optional>
#include <string>
#include <vector>

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

}  // namespace kiln::driver::detail
