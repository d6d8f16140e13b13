// A machine's GPU topology: every GPU with its identities, NUMA node, local CPUs, PCIe link and
// the chain of bridges up to its root port (from sysfs), joined with the driver's and NVML's facts
// (NVLinks, MIG, memory), and the link between every pair classified as nvidia-smi does.
//
// Discovery reads sysfs under a configurable root (KILN_SYSFS_ROOT, default "/") and takes the
// facts from the live driver or from a recorded JSON, so a recorded server is a test fixture:
// a fixture folder holds sysfs/ (a mirror of the files read) and facts.json.
//
// Thread safety: Topology is an immutable value once discovered; share a const one freely.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/topology/cpu_list.hpp"
#include "kiln/topology/facts.hpp"
#include "kiln/topology/identity.hpp"
#include "kiln/topology/link.hpp"
#include "kiln/topology/pci_address.hpp"

namespace kiln::topology {

struct PcieLinkStatus {
  double current_gts = 0;  // transfer rate per lane, GT/s; 0 when sysfs does not say
  int current_width = 0;   // lanes
  double max_gts = 0;
  int max_width = 0;

  // 1 for 2.5 GT/s ... 6 for 64 GT/s; 0 when unknown.
  static int generation(double gts) noexcept;
};

enum class BridgeRole {
  root_port,          // on the host bridge's root bus
  switch_upstream,    // a PCIe switch's port towards the CPU
  switch_downstream,  // a PCIe switch's port towards devices
};

std::string_view to_string(BridgeRole role) noexcept;

struct PciBridge {
  PciAddress address;
  BridgeRole role = BridgeRole::root_port;
  std::string vendor_id;  // "0x1000"
  std::string device_id;
  PcieLinkStatus link;
};

struct Gpu {
  std::optional<int> nvml_index;    // NVML's and nvidia-smi's number
  std::optional<int> cuda_ordinal;  // in the CUDA environment discovery was asked about
  std::string uuid;
  std::string name;
  std::string compute_capability;
  PciAddress pci;
  std::uint64_t memory_total = 0;
  std::optional<std::uint64_t> memory_free;
  int numa_node = -1;      // sysfs numa_node; -1 when the firmware gives none
  CpuList numa_affinity;   // NUMA nodes local to the GPU (from numa_node, else from its CPUs)
  CpuList cpus;            // local_cpulist
  PcieLinkStatus link;
  std::vector<PciBridge> upstream;  // nearest bridge first, ending with the root port
  std::string host_bridge;          // "pci0000:17": the root complex
  std::vector<NvLinkFacts> nvlinks;
  bool mig_enabled = false;
  std::vector<MigInstance> mig_instances;

  const PciBridge* root_port() const noexcept {
    return upstream.empty() ? nullptr : &upstream.back();
  }
};

struct NumaNode {
  int id = 0;
  CpuList cpus;
  std::vector<int> distances;  // to every node, in id order
};

class Topology {
 public:
  Topology(std::vector<Gpu> gpus, std::vector<NumaNode> numa_nodes, MachineFacts facts,
           VisibleDevices cuda_devices, std::string sysfs_root);

  // In NVML order (PCI bus order), so index i is nvidia-smi's GPU i.
  const std::vector<Gpu>& gpus() const noexcept { return gpus_; }
  const std::vector<NumaNode>& numa_nodes() const noexcept { return numa_nodes_; }
  const MachineFacts& facts() const noexcept { return facts_; }
  const VisibleDevices& cuda_devices() const noexcept { return cuda_devices_; }
  const std::string& sysfs_root() const noexcept { return sysfs_root_; }

  // The link between gpus()[a] and gpus()[b]. Throws kiln::Error on an index out of range.
  const Link& link(std::size_t a, std::size_t b) const;

  // By UUID (or a unique prefix of at least 8 characters), PCI bus id in any spelling, or
  // "cuda:N" for the CUDA ordinal. Null when nothing matches.
  const Gpu* find(std::string_view key) const noexcept;
  std::size_t index_of(const Gpu& gpu) const noexcept;  // position in gpus()

 private:
  std::vector<Gpu> gpus_;
  std::vector<NumaNode> numa_nodes_;
  MachineFacts facts_;
  VisibleDevices cuda_devices_;
  std::string sysfs_root_;
  std::vector<Link> links_;  // gpus_.size() squared, row-major
};

struct DiscoveryOptions {
  std::string sysfs_root;  // empty: KILN_SYSFS_ROOT when set, else "/"
  std::optional<MachineFacts> facts;  // empty: record_live_facts()
  // The CUDA environment to map ordinals for; empty: this process's. When it equals the facts'
  // recording environment, the recorded ordinals are used as they are.
  std::optional<CudaEnvironment> cuda_env;
};

// Reads sysfs and joins it with the facts. Throws kiln::Error (invalid_argument) naming the root,
// the GPU and the file when the tree lacks a GPU the facts name or a file kiln needs, or holds
// something unreadable; the driver's error when live facts cannot be had.
Topology discover(DiscoveryOptions options = {});

// A fixture folder: DIR/sysfs (the sysfs root) and DIR/facts.json.
Topology discover_fixture(const std::string& dir, std::optional<CudaEnvironment> cuda_env = {});

// KILN_SYSFS_ROOT when set and not empty, else "/".
std::string default_sysfs_root();

}  // namespace kiln::topology
