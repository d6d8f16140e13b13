// nvidia-smi's own answers, for GPU tests that check kiln against it.
#pragma once

#include <string>
#include <vector>

namespace kiln::testing {

// One row per GPU, one cell per field of `--query-gpu=<fields>` (cells trimmed).
std::vector<std::vector<std::string>> query_nvidia_smi(const std::string& fields, bool with_units = false);

}  // namespace kiln::testing
