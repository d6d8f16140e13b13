#include "topology/detail/sysfs_reader.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "kiln/driver/error.hpp"

namespace kiln::topology::detail {

namespace fs = std::filesystem;

SysfsReader::SysfsReader(std::string root) : root_(std::move(root)) {
  while (!root_.empty() && root_.back() == '/') root_.pop_back();
}

std::string SysfsReader::host_path(std::string_view sys_path) const { return root_ + std::string(sys_path); }

bool SysfsReader::exists(std::string_view sys_path) const {
  std::error_code ec;
  return fs::exists(host_path(sys_path), ec);
}

std::optional<std::string> SysfsReader::read(std::string_view sys_path) const {
  std::ifstream in(host_path(sys_path), std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t' || s.back() == '\0')) s.pop_back();
  return s;
}

std::string SysfsReader::read_required(std::string_view sys_path, std::string_view why_needed) const {
  if (auto s = read(sys_path)) return *s;
  throw Error(Errc::invalid_argument, "the sysfs tree under " + (root_.empty() ? std::string("/") : root_) +
                                          " lacks " + std::string(sys_path) + " (" + std::string(why_needed) + ")");
}

std::optional<std::string> SysfsReader::resolve_pci_device(std::string_view bdf) const {
  const std::string link = "/sys/bus/pci/devices/" + std::string(bdf);
  std::error_code ec;
  const fs::path host = host_path(link);
  if (fs::is_symlink(host, ec)) {
    fs::path target = fs::read_symlink(host, ec);
    if (ec) return std::nullopt;
    // A relative target is resolved against the link's live folder, never against the host's.
    fs::path live = target.is_absolute() ? target : fs::path("/sys/bus/pci/devices") / target;
    return live.lexically_normal().string();
  }
  if (auto text = read(link + ".link"); text && !text->empty()) return fs::path(*text).lexically_normal().string();
  return std::nullopt;
}

std::vector<std::string> SysfsReader::list(std::string_view sys_path) const {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(host_path(sys_path), ec), end; !ec && it != end; it.increment(ec))
    out.push_back(it->path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace kiln::topology::detail
