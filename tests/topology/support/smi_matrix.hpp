// Reading the matrix `nvidia-smi topo -m` prints (and `kiln topo` mirrors): the GPU rows, with
// only the GPU columns and the three affinity columns, each cell trimmed. Used to compare kiln's
// matrix with nvidia-smi's on a GPU machine and with the recorded fixture output.
#pragma once

#include <string>
#include <vector>

namespace kiln::testing {

// Rows "GPU<i>", then a cell per GPU, then CPU Affinity, NUMA Affinity, GPU NUMA ID. NIC rows
// and columns are dropped; ANSI escapes (nvidia-smi underlines its header) are ignored.
std::vector<std::vector<std::string>> parse_topo_matrix(const std::string& text);

}  // namespace kiln::testing
