// The GPU matrix `nvidia-smi topo -m` prints, with CPU and NUMA affinity, and kiln's identity
// table (NVML index, CUDA ordinal, UUID, bus id) under it.
//
// Thread safety: pure functions over a const Topology.
#pragma once

#include <string>
#include <vector>

#include "kiln/topology/topology.hpp"

namespace kiln::topology {

// One row per GPU, in nvidia-smi's column order: "GPU<i>", a link per GPU ("X", "NV18", "PIX",
// ...), CPU affinity ("0-55,112-167"), NUMA affinity ("0"), GPU NUMA ID ("N/A").
std::vector<std::vector<std::string>> matrix_rows(const Topology& topology);
// The header row: "", "GPU0", ..., "CPU Affinity", "NUMA Affinity", "GPU NUMA ID".
std::vector<std::string> matrix_header(const Topology& topology);

// The matrix as text (tab-separated like nvidia-smi), the legend, and the identity table.
std::string format_matrix(const Topology& topology);

}  // namespace kiln::topology
