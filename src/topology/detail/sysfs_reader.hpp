// Reading sysfs files below a root folder ("/" on a live machine, a fixture's sysfs/ in tests).
// Paths are given as on a live machine ("/sys/devices/..."); the root is prefixed here.
//
// Thread safety: immutable after construction; reads may run from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::topology::detail {

class SysfsReader {
 public:
  explicit SysfsReader(std::string root);

  const std::string& root() const noexcept { return root_; }
  std::string host_path(std::string_view sys_path) const;  // root + sys_path
  bool exists(std::string_view sys_path) const;

  // The file's content without trailing whitespace; empty when it does not exist.
  std::optional<std::string> read(std::string_view sys_path) const;
  // As read(), but throws kiln::Error (invalid_argument) naming the file, the root and `why_needed`.
  std::string read_required(std::string_view sys_path, std::string_view why_needed) const;

  // Where /sys/bus/pci/devices/<bdf> leads, as a live path ("/sys/devices/pci0000:00/0000:00:06.0"):
  // from a real symlink (relative or absolute) or from "<bdf>.link", a text file holding the path
  // (what scripts/capture-topology writes, since copying resolves symlinks). Empty when neither.
  std::optional<std::string> resolve_pci_device(std::string_view bdf) const;

  // Entries of a folder, sorted; empty when it does not exist.
  std::vector<std::string> list(std::string_view sys_path) const;

 private:
  std::string root_;  // without a trailing slash; "" for "/"
};

}  // namespace kiln::topology::detail
