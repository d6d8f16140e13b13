// The dynamic loader's search path, read the way ld.so reads it, to find every copy of a library.
#include <glob.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "kiln/driver/environment.hpp"

namespace kiln::driver {
namespace {

namespace fs = std::filesystem;

void read_ld_so_conf(const std::string& file, std::vector<std::string>& dirs, int depth) {
  if (depth > 8) return;  // include loops
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream words(line);
    std::string first;
    if (!(words >> first)) continue;
    if (first == "include") {
      std::string pattern;
      while (words >> pattern) {
        if (!pattern.empty() && pattern[0] != '/')
          pattern = (fs::path(file).parent_path() / pattern).string();
        glob_t g{};
        if (glob(pattern.c_str(), 0, nullptr, &g) == 0)
          for (size_t i = 0; i < g.gl_pathc; ++i) read_ld_so_conf(g.gl_pathv[i], dirs, depth + 1);
        globfree(&g);
      }
    } else {
      dirs.push_back(first);
    }
  }
}

}  // namespace

std::vector<std::string> loader_search_dirs(const std::string& ld_library_path,
                                            const std::string& ld_so_conf) {
  std::vector<std::string> dirs;
  std::istringstream parts(ld_library_path);
  for (std::string d; std::getline(parts, d, ':');)
    if (!d.empty()) dirs.push_back(d);
  read_ld_so_conf(ld_so_conf, dirs, 0);
  for (const char* d : {"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64",
                        "/lib", "/usr/lib"})
    dirs.emplace_back(d);
  std::vector<std::string> unique;
  for (auto& d : dirs)
    if (std::find(unique.begin(), unique.end(), d) == unique.end()) unique.push_back(d);
  return unique;
}

std::vector<std::string> find_library_copies(const std::vector<std::string>& dirs,
                                             const std::vector<std::string>& file_names) {
  std::vector<std::string> copies;
  for (const std::string& dir : dirs) {
    for (const std::string& name : file_names) {
      std::error_code ec;
      fs::path candidate = fs::path(dir) / name;
      if (!fs::exists(candidate, ec)) continue;
      std::string real = fs::canonical(candidate, ec).string();
      if (ec) continue;
      if (std::find(copies.begin(), copies.end(), real) == copies.end()) copies.push_back(real);
    }
  }
  return copies;
}

}  // namespace kiln::driver
