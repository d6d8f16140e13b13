#include "support/nvidia_smi.hpp"

#include <gtest/gtest.h>

#include <sstream>

#include "support/process.hpp"

namespace kiln::testing {

std::vector<std::vector<std::string>> query_nvidia_smi(const std::string& fields, bool with_units) {
  const auto r = run_process({"nvidia-smi", "--query-gpu=" + fields,
                              with_units ? "--format=csv,noheader" : "--format=csv,noheader,nounits"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::vector<std::string>> rows;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    std::vector<std::string> cells;
    std::istringstream parts(line);
    for (std::string c; std::getline(parts, c, ',');) {
      c.erase(0, c.find_first_not_of(' '));
      c.erase(c.find_last_not_of(' ') + 1);
      cells.push_back(c);
    }
    rows.push_back(cells);
  }
  return rows;
}

}  // namespace kiln::testing
