// Choosing the GPUs for a job of k GPUs: among those with enough free memory, the set with the
// best interconnect (all joined by NVLink if possible, then under one PCIe switch, then within one
// root complex, then one NUMA node), ties broken by free memory and then by the caller's load.
//
// Thread safety: a pure function over a const Topology and the caller's values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kiln/topology/link.hpp"
#include "kiln/topology/topology.hpp"

namespace kiln::topology {

struct PlacementConstraints {
  std::uint64_t min_free_memory = 0;  // bytes each chosen GPU must have free
  // Free memory by UUID, overriding the topology's facts (a scheduler's own accounting).
  std::map<std::string, std::uint64_t> free_memory;
  // Load by UUID (any scale; lower is better); GPUs missing here have load 0.
  std::map<std::string, double> load;
  std::vector<std::string> exclude;  // UUIDs or bus ids never to choose
  std::optional<int> numa_node;      // only GPUs local to this NUMA node
};

struct ChosenGpu {
  std::string uuid;
  std::string pci_bus_id;           // canonical "0000:3b:00.0"
  std::optional<int> cuda_ordinal;  // for convenience; the UUID is the identity
  std::size_t index = 0;            // in Topology::gpus()
};

struct Placement {
  std::vector<ChosenGpu> gpus;  // in PCI bus order
  Link worst_link;              // the slowest link between two chosen GPUs (self for k == 1)
  std::string reason;           // why these: the interconnect and how ties were broken
};

// Throws kiln::Error (invalid_argument) when k is 0 or fewer than k GPUs meet the constraints,
// saying how many did and why the others were left out.
Placement choose(const Topology& topology, std::size_t k, const PlacementConstraints& constraints = {});

}  // namespace kiln::topology
