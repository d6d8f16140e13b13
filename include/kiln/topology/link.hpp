// How two GPUs are joined, classified exactly as `nvidia-smi topo -m` does.
//
// Thread safety: value types and pure functions.
#pragma once

#include <string>

namespace kiln::topology {

// Best first: ordering by this enum orders links from fastest to slowest path.
enum class LinkType {
  self,    // X: the same GPU
  nvlink,  // NV#: a bonded set of # NVLinks (directly or through NVSwitches)
  pix,     // at most a single PCIe switch (or bridge) between them
  pxb,     // several PCIe switches or bridges, without the host bridge
  phb,     // through a PCIe host bridge (the CPU's root complex)
  node,    // between host bridges of one NUMA node
  sys,     // across the SMP interconnect between NUMA nodes (QPI/UPI, Infinity Fabric)
};

struct Link {
  LinkType type = LinkType::sys;
  int nvlinks = 0;  // the number of NVLinks when type is nvlink

  // "X", "NV18", "PIX", "PXB", "PHB", "NODE", "SYS": nvidia-smi's spelling.
  std::string to_string() const;
  // True when `*this` is a faster path than `other` (more NVLinks beat fewer).
  bool better_than(const Link& other) const noexcept;

  friend bool operator==(const Link&, const Link&) = default;
};

// The legend nvidia-smi prints under its matrix.
const char* link_legend() noexcept;

}  // namespace kiln::topology
