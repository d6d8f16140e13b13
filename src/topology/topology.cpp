// The Topology value and the classification of the link between two GPUs, as nvidia-smi does it.
#include "kiln/topology/topology.hpp"

#include <algorithm>
#include <set>

#include "kiln/driver/error.hpp"

namespace kiln::topology {
namespace {

int nvlink_count(const Gpu& a, const Gpu& b) {
  const std::string b_bus = b.pci.to_string();
  int direct = 0, a_switch = 0, b_switch = 0;
  for (const auto& l : a.nvlinks) {
    if (l.remote_type == NvLinkPeerType::gpu && l.remote_pci_bus_id == b_bus) ++direct;
    if (l.remote_type == NvLinkPeerType::switch_) ++a_switch;
  }
  for (const auto& l : b.nvlinks)
    if (l.remote_type == NvLinkPeerType::switch_) ++b_switch;
  // Through NVSwitches every GPU reaches every other with all of its switch links; the pair's
  // bandwidth is bounded by the GPU with fewer.
  return direct + std::min(a_switch, b_switch);
}

// The PCIe switch (or lone bridge) a bridge belongs to: a downstream port belongs to the switch
// of the upstream port above it.
std::string switch_of(const Gpu& gpu, std::size_t i) {
  const PciBridge& b = gpu.upstream[i];
  if (b.role == BridgeRole::switch_downstream && i + 1 < gpu.upstream.size())
    return gpu.upstream[i + 1].address.to_string();
  return b.address.to_string();
}

Link classify_pcie(const Gpu& a, const Gpu& b) {
  if (a.host_bridge != b.host_bridge) {
    // Another root complex: within the NUMA node, or across the SMP interconnect.
    return {a.numa_affinity == b.numa_affinity ? LinkType::node : LinkType::sys, 0};
  }
  // Common bridges, counted from the root port down (upstream is nearest first).
  const std::size_t na = a.upstream.size(), nb = b.upstream.size();
  std::size_t common = 0;
  while (common < na && common < nb &&
         a.upstream[na - 1 - common].address == b.upstream[nb - 1 - common].address)
    ++common;
  if (common == 0) return {LinkType::phb, 0};
  // The switches on the path: those below the deepest common bridge on each side, and its own.
  std::set<std::string> switches;
  for (std::size_t i = 0; i + common <= na; ++i) switches.insert(switch_of(a, i));
  for (std::size_t i = 0; i + common <= nb; ++i) switches.insert(switch_of(b, i));
  return {switches.size() <= 1 ? LinkType::pix : LinkType::pxb, 0};
}

}  // namespace

int PcieLinkStatus::generation(double gts) noexcept {
  if (gts <= 0) return 0;
  if (gts < 4) return 1;     // 2.5
  if (gts < 7) return 2;     // 5
  if (gts < 12) return 3;    // 8
  if (gts < 24) return 4;    // 16
  if (gts < 48) return 5;    // 32
  return 6;                  // 64
}

std::string_view to_string(BridgeRole role) noexcept {
  switch (role) {
    case BridgeRole::root_port: return "root_port";
    case BridgeRole::switch_upstream: return "switch_upstream";
    case BridgeRole::switch_downstream: return "switch_downstream";
  }
  return "bridge";
}

Topology::Topology(std::vector<Gpu> gpus, std::vector<NumaNode> numa_nodes, MachineFacts facts,
                   VisibleDevices cuda_devices, std::string sysfs_root)
    : gpus_(std::move(gpus)),
      numa_nodes_(std::move(numa_nodes)),
      facts_(std::move(facts)),
      cuda_devices_(std::move(cuda_devices)),
      sysfs_root_(std::move(sysfs_root)) {
  const std::size_t n = gpus_.size();
  links_.resize(n * n);
  for (std::size_t a = 0; a < n; ++a)
    for (std::size_t b = 0; b < n; ++b) {
      Link& l = links_[a * n + b];
      if (a == b) {
        l = {LinkType::self, 0};
      } else if (int nv = nvlink_count(gpus_[a], gpus_[b]); nv > 0) {
        l = {LinkType::nvlink, nv};
      } else {
        l = classify_pcie(gpus_[a], gpus_[b]);
      }
    }
}

const Link& Topology::link(std::size_t a, std::size_t b) const {
  if (a >= gpus_.size() || b >= gpus_.size())
    throw Error(Errc::invalid_argument, "GPU index " + std::to_string(std::max(a, b)) + " is out of range (" +
                                            std::to_string(gpus_.size()) + " GPUs)");
  return links_[a * gpus_.size() + b];
}

const Gpu* Topology::find(std::string_view key) const noexcept {
  if (key.rfind("cuda:", 0) == 0) {
    for (const auto& g : gpus_)
      if (g.cuda_ordinal && std::to_string(*g.cuda_ordinal) == key.substr(5)) return &g;
    return nullptr;
  }
  if (auto address = PciAddress::parse(key)) {
    for (const auto& g : gpus_)
      if (g.pci == *address) return &g;
    return nullptr;
  }
  const Gpu* found = nullptr;
  if (key.size() < 8) return nullptr;
  for (const auto& g : gpus_)
    if (g.uuid.rfind(key, 0) == 0) {
      if (found) return nullptr;  // ambiguous
      found = &g;
    }
  return found;
}

std::size_t Topology::index_of(const Gpu& gpu) const noexcept {
  return static_cast<std::size_t>(&gpu - gpus_.data());
}

}  // namespace kiln::topology
