#include "kiln/topology/link.hpp"

namespace kiln::topology {

std::string Link::to_string() const {
  switch (type) {
    case LinkType::self: return "X";
    case LinkType::nvlink: return "NV" + std::to_string(nvlinks);
    case LinkType::pix: return "PIX";
    case LinkType::pxb: return "PXB";
    case LinkType::phb: return "PHB";
    case LinkType::node: return "NODE";
    case LinkType::sys: return "SYS";
  }
  return "?";
}

bool Link::better_than(const Link& other) const noexcept {
  if (type != other.type) return type < other.type;
  return type == LinkType::nvlink && nvlinks > other.nvlinks;
}

const char* link_legend() noexcept {
  return "Legend:\n\n"
         "  X    = Self\n"
         "  SYS  = Connection traversing PCIe as well as the SMP interconnect between NUMA nodes (e.g., QPI/UPI)\n"
         "  NODE = Connection traversing PCIe as well as the interconnect between PCIe Host Bridges within a NUMA node\n"
         "  PHB  = Connection traversing PCIe as well as a PCIe Host Bridge (typically the CPU)\n"
         "  PXB  = Connection traversing multiple PCIe bridges (without traversing the PCIe Host Bridge)\n"
         "  PIX  = Connection traversing at most a single PCIe bridge\n"
         "  NV#  = Connection traversing a bonded set of # NVLinks\n";
}

}  // namespace kiln::topology
