#include "driver/detail/dynamic_library.hpp"

#include <dlfcn.h>
#include <link.h>

#include <cstdlib>
#include <filesystem>

namespace kiln::driver::detail {

Opened open_library(const std::string& file) {
  dlerror();
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle) return {handle, {}};
  const char* why = dlerror();
  return {nullptr, why ? why : "dlopen failed"};
}

std::string real_path_of(void* handle) {
  link_map* map = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || !map || !map->l_name) return {};
  std::error_code ec;
  auto real = std::filesystem::canonical(map->l_name, ec);
  return ec ? std::string(map->l_name) : real.string();
}

void* find_symbol(void* handle, const char* name) { return dlsym(handle, name); }

std::string getenv_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

}  // namespace kiln::driver::detail
