// A picture of the machine: NUMA nodes (sockets) with their CPUs, root complexes, root ports,
// PCIe switches, GPUs, NVSwitches and NVLinks, each edge labelled with its link (PCIe generation
// and width, or the number of NVLinks). Laid out in columns per NUMA node, readable for 8 GPUs.
//
// Thread safety: a pure function over a const Topology.
#pragma once

#include <string>

#include "kiln/topology/topology.hpp"

namespace kiln::topology {

// A standalone SVG 1.1 document.
std::string render_svg(const Topology& topology);

}  // namespace kiln::topology
