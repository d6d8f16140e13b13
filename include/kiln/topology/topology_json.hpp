// The topology as JSON, as `kiln topo --json` prints it: every GPU with its identities, PCIe path,
// NUMA and CPU affinity, NVLinks and MIG instances; the matrix; the CUDA device mapping; NUMA
// nodes. The schema is in docs/TOPOLOGY.md.
//
// Thread safety: a pure function over a const Topology.
#pragma once

#include <string>

#include "kiln/topology/placement.hpp"
#include "kiln/topology/topology.hpp"

namespace kiln::topology {

std::string topology_to_json(const Topology& topology, int indent = 2);

// A placement, as `kiln topo --choose K --json` prints it:
// {"gpus": [{"uuid", "pci_bus_id", "cuda_ordinal" (or null), "index"}], "link": "NV18", "reason": "..."}.
std::string placement_to_json(const Placement& placement, int indent = -1);

}  // namespace kiln::topology
