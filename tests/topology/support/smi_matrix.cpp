#include "support/smi_matrix.hpp"

#include <sstream>

namespace kiln::testing {
namespace {

std::string strip_escapes(const std::string& line) {
  std::string out;
  for (std::size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '\x1b') {
      while (i < line.size() && line[i] != 'm') ++i;
      continue;
    }
    out += line[i];
  }
  return out;
}

// Cells separated by tabs or by two or more spaces (kiln aligns with spaces); empty cells dropped.
std::vector<std::string> cells(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    while (!cur.empty() && cur.back() == ' ') cur.pop_back();
    std::size_t s = cur.find_first_not_of(' ');
    if (s != std::string::npos) out.push_back(cur.substr(s));
    cur.clear();
  };
  for (std::size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '\t' || (line[i] == ' ' && i + 1 < line.size() && line[i + 1] == ' ')) {
      flush();
      while (i + 1 < line.size() && (line[i + 1] == ' ' || line[i + 1] == '\t')) ++i;
      continue;
    }
    cur += line[i];
  }
  flush();
  return out;
}

}  // namespace

std::vector<std::vector<std::string>> parse_topo_matrix(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  for (std::string raw; std::getline(in, raw);) {
    const std::string line = strip_escapes(raw);
    auto c = cells(line);
    if (c.empty()) {
      if (!header.empty()) break;  // the matrix ends at the first blank line
      continue;
    }
    if (header.empty()) {
      if (c.front() == "GPU0") header = c;
      continue;
    }
    if (c.front().rfind("GPU", 0) != 0) continue;  // NIC rows
    std::vector<std::string> row{c.front()};
    for (std::size_t i = 0; i < header.size() && i + 1 < c.size(); ++i) {
      const std::string& h = header[i];
      const bool gpu_column = h.rfind("GPU", 0) == 0 && h != "GPU NUMA ID";
      if (gpu_column || h == "CPU Affinity" || h == "NUMA Affinity" || h == "GPU NUMA ID") row.push_back(c[i + 1]);
    }
    rows.push_back(row);
  }
  return rows;
}

}  // namespace kiln::testing
