// Building small sysfs trees in a temporary folder for tests: devices with their files, the
// /sys/bus/pci/devices symlinks (relative, as the kernel makes them) and NUMA nodes.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kiln/topology/facts.hpp"

namespace kiln::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

class SysfsTree {
 public:
  explicit SysfsTree(std::filesystem::path root);
  const std::filesystem::path& root() const noexcept { return root_; }

  void write(const std::string& live_path, const std::string& content) const;
  // A bridge (class 0x060400) or a GPU (NVIDIA 3D controller) with the files kiln reads.
  void bridge(const std::string& live_dir) const;
  void gpu(const std::string& live_dir, const std::string& cpus = "0-3", int numa_node = 0) const;
  // /sys/bus/pci/devices/<last component> -> ../../../devices/... (a real symlink).
  void link(const std::string& live_dir) const;
  void numa_node(int id, const std::string& cpus) const;

 private:
  std::filesystem::path root_;
};

// Facts for GPUs given as (uuid, bus id), each 80 GiB with all free, NVML index in order.
topology::MachineFacts simple_facts(const std::vector<std::pair<std::string, std::string>>& gpus);

}  // namespace kiln::testing
