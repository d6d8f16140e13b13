#include "driver/detail/dynamic_library.hpp"

#include <dlfcn.h>
#include <link.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "kiln/driver/environment.hpp"

namespace kiln::driver::detail {
namespace {

// The object holding kiln's code (the program, or libkiln.so): dlopen applies its RUNPATH.
void* own_object() {
  static const char anchor = 0;
  Dl_info info{};
  link_map* map = nullptr;
  if (dladdr1(&anchor, &info, reinterpret_cast<void**>(&map), RTLD_DL_LINKMAP) == 0 || !map) return nullptr;
  if (!map->l_name || !*map->l_name) return dlopen(nullptr, RTLD_LAZY);  // the program itself
  return dlopen(map->l_name, RTLD_LAZY | RTLD_NOLOAD);
}

// glibc's own folders (/lib/<triplet>, /usr/lib/<triplet>, /lib, /usr/lib, or the lib64 forms).
bool system_dir(const std::string& dir) {
  for (const char* root : {"/lib", "/usr/lib", "/lib64", "/usr/lib64"}) {
    const std::string r = root;
    if (dir == r || dir == r + "/") return true;
    if (dir.starts_with(r + "/") && dir.find('/', r.size() + 1) >= dir.size() - 1 && dir.ends_with("-gnu"))
      return true;
  }
  return false;
}

// The dynamic loader's list for dlopen from `handle` (RPATH, LD_LIBRARY_PATH, RUNPATH, then its
// system folders), with /etc/ld.so.conf's folders standing in for /etc/ld.so.cache (which
// ldconfig builds from them) before the system folders, where ld.so looks in it. Empty when the
// loader will not tell.
std::vector<std::string> serinfo_dirs(void* handle) {
  Dl_serinfo size{};
  if (dlinfo(handle, RTLD_DI_SERINFOSIZE, &size) != 0 || size.dls_size < sizeof(Dl_serinfo)) return {};
  std::unique_ptr<Dl_serinfo, decltype(&std::free)> info(static_cast<Dl_serinfo*>(std::malloc(size.dls_size)),
                                                         &std::free);
  if (!info || dlinfo(handle, RTLD_DI_SERINFOSIZE, info.get()) != 0 ||
      dlinfo(handle, RTLD_DI_SERINFO, info.get()) != 0)
    return {};
  std::vector<std::string> dirs;
  const Dl_serpath* paths = info->dls_serpath;
  for (unsigned i = 0; i < info->dls_cnt; ++i)
    if (paths[i].dls_name) dirs.emplace_back(paths[i].dls_name);
  // The system folders close the list, each once (glibc leaves dls_flags zero, so they are known
  // by name; a system folder repeated earlier came from LD_LIBRARY_PATH or a RUNPATH). None: the
  // program was linked with -z nodefaultlib, which skips the cache too.
  std::size_t system_from = dirs.size();
  while (system_from > 0 && system_dir(dirs[system_from - 1]) &&
         std::find(dirs.begin() + static_cast<std::ptrdiff_t>(system_from), dirs.end(), dirs[system_from - 1]) ==
             dirs.end())
    --system_from;
  if (system_from < dirs.size()) {
    std::vector<std::string> cache = loader_search_dirs("");  // ld.so.conf's folders, then the system's
    dirs.insert(dirs.begin() + static_cast<std::ptrdiff_t>(system_from), cache.begin(), cache.end());
  }
  return dirs;
}

}  // namespace

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

std::optional<std::string> loaded_path_of(const std::string& soname) {
  void* handle = dlopen(soname.c_str(), RTLD_LAZY | RTLD_NOLOAD);
  if (!handle) {
    dlerror();
    return std::nullopt;
  }
  std::string path = real_path_of(handle);
  dlclose(handle);
  if (path.empty()) return std::nullopt;
  return path;
}

std::vector<std::string> dlopen_search_dirs() {
  std::vector<std::string> dirs;
  if (void* self = own_object()) {
    dirs = serinfo_dirs(self);
    dlclose(self);
  }
  dlerror();
  if (dirs.empty()) dirs = loader_search_dirs(getenv_or_empty("LD_LIBRARY_PATH"));
  std::vector<std::string> unique;
  for (auto& d : dirs)
    if (std::find(unique.begin(), unique.end(), d) == unique.end()) unique.push_back(std::move(d));
  return unique;
}

std::optional<std::string> locate_first(const std::vector<std::string>& candidates) {
  namespace fs = std::filesystem;
  std::optional<std::vector<std::string>> loader_dirs;  // looked up for the first bare name only
  for (const std::string& candidate : candidates) {
    std::error_code ec;
    if (candidate.find('/') != std::string::npos) {
      // A path: dlopen opens exactly that file.
      if (!fs::exists(candidate, ec)) continue;
      fs::path real = fs::canonical(candidate, ec);
      if (!ec) return real.string();
      continue;
    }
    // A bare name: a library of that name already in the process, else the loader's search.
    if (auto loaded = loaded_path_of(candidate)) return loaded;
    if (!loader_dirs) loader_dirs = dlopen_search_dirs();
    for (const std::string& dir : *loader_dirs) {
      const fs::path file = fs::path(dir) / candidate;
      if (!fs::exists(file, ec)) continue;
      fs::path real = fs::canonical(file, ec);
      if (!ec) return real.string();
    }
  }
  return std::nullopt;
}

std::string not_found_detail(const std::string& what, const char* path_variable,
                             const std::optional<std::string>& explicit_path, const std::vector<std::string>& tried) {
  std::string detail = explicit_path ? std::string(path_variable) + "=" + *explicit_path +
                                           " does not name a loadable " + what + " library."
                                     : "No " + what + " library was found.";
  detail += " Tried, in order:";
  for (const std::string& t : tried) detail += "\n  " + t;
  return detail;
}

}  // namespace kiln::driver::detail
