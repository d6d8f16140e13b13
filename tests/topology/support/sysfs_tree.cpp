#include "support/sysfs_tree.hpp"

#include <unistd.h>

#include <fstream>
#include <stdexcept>

namespace kiln::testing {

namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "kiln-topo-XXXXXX").string();
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

SysfsTree::SysfsTree(fs::path root) : root_(std::move(root)) { fs::create_directories(root_ / "sys/bus/pci/devices"); }

void SysfsTree::write(const std::string& live_path, const std::string& content) const {
  const fs::path p = root_ / fs::path(live_path).relative_path();
  fs::create_directories(p.parent_path());
  std::ofstream(p) << content << "\n";
}

void SysfsTree::bridge(const std::string& dir) const {
  write(dir + "/vendor", "0x8086");
  write(dir + "/device", "0x352a");
  write(dir + "/class", "0x060400");
  write(dir + "/current_link_speed", "16.0 GT/s PCIe");
  write(dir + "/current_link_width", "16");
  write(dir + "/max_link_speed", "32.0 GT/s PCIe");
  write(dir + "/max_link_width", "16");
}

void SysfsTree::gpu(const std::string& dir, const std::string& cpus, int numa_node) const {
  write(dir + "/vendor", "0x10de");
  write(dir + "/device", "0x2330");
  write(dir + "/class", "0x030200");
  write(dir + "/numa_node", std::to_string(numa_node));
  write(dir + "/local_cpulist", cpus);
  write(dir + "/current_link_speed", "16.0 GT/s PCIe");
  write(dir + "/current_link_width", "8");
  write(dir + "/max_link_speed", "32.0 GT/s PCIe");
  write(dir + "/max_link_width", "16");
}

void SysfsTree::link(const std::string& dir) const {
  const fs::path live(dir);
  fs::create_symlink(fs::path("../../..") / live.lexically_relative("/sys"),
                     root_ / "sys/bus/pci/devices" / live.filename());
}

void SysfsTree::numa_node(int id, const std::string& cpus) const {
  write("/sys/devices/system/node/node" + std::to_string(id) + "/cpulist", cpus);
}

topology::MachineFacts simple_facts(const std::vector<std::pair<std::string, std::string>>& gpus) {
  topology::MachineFacts facts;
  facts.source = "test";
  int i = 0;
  for (const auto& [uuid, bus] : gpus) {
    topology::GpuFacts g;
    g.uuid = uuid;
    g.pci_bus_id = bus;
    g.name = "NVIDIA H100 80GB HBM3";
    g.memory_total = 80ull << 30;
    g.memory_free = 80ull << 30;
    g.nvml_index = i;
    g.cuda_ordinal = i;
    ++i;
    facts.gpus.push_back(g);
  }
  return facts;
}

}  // namespace kiln::testing
