// A picture of the machine: NUMA nodes (sockets) with their CPUs, root complexes, root ports,
// PCIe switches, GPUs, NVSwitches and NVLinks, each edge labelled with its link (PCIe generation
// and width, or the number of NVLinks). Laid out in columns per NUMA node, readable for 8 GPUs.
//
// Thread safety: a pure function over a const Topology.
#pragma once

#include <string>
#include <string_view>

#include "kiln/topology/topology.hpp"

namespace kiln::topology {

// A standalone SVG 1.1 document.
std::string render_svg(const Topology& topology);

// The picture of a machine kiln could not see: "No topology to show" and the reason, wrapped at
// about 90 characters a line (a status page shows it where the picture would be).
std::string render_unavailable_svg(std::string_view reason);

}  // namespace kiln::topology
