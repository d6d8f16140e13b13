#include "kiln/topology/matrix.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace kiln::topology {
namespace {

std::string pcie_text(double gts, int width) {
  if (gts <= 0 || width <= 0) return "?";
  return "Gen" + std::to_string(PcieLinkStatus::generation(gts)) + " x" + std::to_string(width);
}

std::string gib(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1024.0 * 1024 * 1024));
  return buf;
}

// Rows of cells as left-aligned columns, two spaces apart.
std::string align(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& r : rows)
    for (std::size_t c = 0; c < r.size(); ++c) {
      if (widths.size() <= c) widths.resize(c + 1, 0);
      widths[c] = std::max(widths[c], r[c].size());
    }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t c = 0; c < r.size(); ++c) {
      line += r[c];
      if (c + 1 < r.size()) line += std::string(widths[c] - r[c].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

}  // namespace

std::vector<std::string> matrix_header(const Topology& topology) {
  std::vector<std::string> header{""};
  for (std::size_t i = 0; i < topology.gpus().size(); ++i) header.push_back("GPU" + std::to_string(i));
  header.insert(header.end(), {"CPU Affinity", "NUMA Affinity", "GPU NUMA ID"});
  return header;
}

std::vector<std::vector<std::string>> matrix_rows(const Topology& topology) {
  std::vector<std::vector<std::string>> rows;
  const auto& gpus = topology.gpus();
  for (std::size_t a = 0; a < gpus.size(); ++a) {
    std::vector<std::string> row{"GPU" + std::to_string(a)};
    for (std::size_t b = 0; b < gpus.size(); ++b) row.push_back(topology.link(a, b).to_string());
    row.push_back(gpus[a].cpus.empty() ? "N/A" : gpus[a].cpus.to_string());
    row.push_back(gpus[a].numa_affinity.empty() ? "N/A" : gpus[a].numa_affinity.to_string());
    row.push_back("N/A");  // a NUMA node of the GPU's own memory exists only on coherent (C2C) systems
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string format_matrix(const Topology& topology) {
  std::vector<std::vector<std::string>> table{matrix_header(topology)};
  for (auto& r : matrix_rows(topology)) table.push_back(std::move(r));
  std::string out = align(table) + "\n" + link_legend() + "\n";

  std::vector<std::vector<std::string>> ids{
      {"", "NVML", "CUDA", "UUID", "PCI bus id", "NUMA", "PCIe now", "PCIe max", "memory", "name"}};
  for (std::size_t i = 0; i < topology.gpus().size(); ++i) {
    const Gpu& g = topology.gpus()[i];
    ids.push_back({"GPU" + std::to_string(i), g.nvml_index ? std::to_string(*g.nvml_index) : "-",
                   g.cuda_ordinal ? std::to_string(*g.cuda_ordinal) : "-", g.uuid, g.pci.to_string(),
                   g.numa_node >= 0 ? std::to_string(g.numa_node) : "-",
                   pcie_text(g.link.current_gts, g.link.current_width), pcie_text(g.link.max_gts, g.link.max_width),
                   gib(g.memory_total), g.name});
    for (const auto& m : g.mig_instances)
      ids.push_back({"", "", "", m.uuid, "MIG " + std::to_string(m.gpu_instance) + "/" + std::to_string(m.compute_instance),
                     "", "", "", gib(m.memory_total), m.name});
  }
  out += "Identities (CUDA: ordinal in this CUDA environment, \"-\" when hidden)\n" + align(ids);
  const auto& devices = topology.cuda_devices();
  bool mig_devices = false;
  for (const auto& d : devices.devices) mig_devices |= d.mig_uuid.has_value();
  if (mig_devices) {
    out += "CUDA devices\n";
    for (const auto& d : devices.devices)
      out += "  " + std::to_string(d.ordinal) + "  " + (d.mig_uuid ? *d.mig_uuid + " on " : "") + d.gpu_uuid + "\n";
  }
  for (const auto& note : devices.notes) out += "Note: " + note + "\n";
  return out;
}

}  // namespace kiln::topology
