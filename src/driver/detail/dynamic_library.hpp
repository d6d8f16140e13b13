// Thin helpers over dlopen: open with the reason for failure, and the real path of what opened.
#pragma once

#include <string>

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

}  // namespace kiln::driver::detail
