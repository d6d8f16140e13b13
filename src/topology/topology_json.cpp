#include "kiln/topology/topology_json.hpp"

#include <nlohmann/json.hpp>

#include "topology/detail/facts_json_parts.hpp"

#include "kiln/topology/matrix.hpp"

namespace kiln::topology {
namespace {

using nlohmann::json;

json link_json(const PcieLinkStatus& l) {
  auto gen = [](double gts) { return gts > 0 ? json(PcieLinkStatus::generation(gts)) : json(nullptr); };
  return {{"current_gts", l.current_gts}, {"current_width", l.current_width}, {"current_generation", gen(l.current_gts)},
          {"max_gts", l.max_gts},         {"max_width", l.max_width},         {"max_generation", gen(l.max_gts)}};
}

template <class T>
json optional_json(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

}  // namespace

std::string topology_to_json(const Topology& topology, int indent) {
  json root;
  root["sysfs_root"] = topology.sysfs_root();
  root["facts_source"] = topology.facts().source;
  root["driver_version"] = topology.facts().driver_version;
  root["gpus"] = json::array();
  for (std::size_t i = 0; i < topology.gpus().size(); ++i) {
    const Gpu& g = topology.gpus()[i];
    json j{{"index", i},
           {"nvml_index", optional_json(g.nvml_index)},
           {"cuda_ordinal", optional_json(g.cuda_ordinal)},
           {"uuid", g.uuid},
           {"pci_bus_id", g.pci.to_string()},
           {"name", g.name},
           {"compute_capability", g.compute_capability},
           {"memory_total", g.memory_total},
           {"memory_free", optional_json(g.memory_free)},
           {"numa_node", g.numa_node},
           {"numa_affinity", g.numa_affinity.ids()},
           {"cpu_affinity", g.cpus.to_string()},
           {"pcie", link_json(g.link)},
           {"host_bridge", g.host_bridge}};
    j["pcie_path"] = json::array();
    for (const auto& b : g.upstream)
      j["pcie_path"].push_back({{"pci_bus_id", b.address.to_string()},
                                {"role", to_string(b.role)},
                                {"vendor_id", b.vendor_id},
                                {"device_id", b.device_id},
                                {"link", link_json(b.link)}});
    j["nvlinks"] = detail::nvlinks_json(g.nvlinks);
    j["mig"] = detail::mig_json(g.mig_enabled, g.mig_instances);
    root["gpus"].push_back(std::move(j));
  }
  root["matrix"] = {{"header", matrix_header(topology)}, {"rows", matrix_rows(topology)}};
  root["cuda_devices"] = json::array();
  for (const auto& d : topology.cuda_devices().devices)
    root["cuda_devices"].push_back({{"ordinal", d.ordinal},
                                    {"gpu_uuid", d.gpu_uuid},
                                    {"pci_bus_id", d.pci_bus_id},
                                    {"mig_uuid", optional_json(d.mig_uuid)}});
  root["cuda_notes"] = topology.cuda_devices().notes;
  root["numa_nodes"] = json::array();
  for (const auto& n : topology.numa_nodes())
    root["numa_nodes"].push_back({{"id", n.id}, {"cpus", n.cpus.to_string()}, {"distances", n.distances}});
  root["p2p"] = json::array();
  for (const auto& p : topology.facts().p2p)
    root["p2p"].push_back({{"a", p.a},
                           {"b", p.b},
                           {"access_supported", p.access_supported},
                           {"performance_rank", p.performance_rank},
                           {"native_atomics", p.native_atomics},
                           {"cuda_array_access", p.cuda_array_access}});
  return root.dump(indent);
}

std::string placement_to_json(const Placement& placement, int indent) {
  json gpus = json::array();
  for (const auto& g : placement.gpus)
    gpus.push_back({{"uuid", g.uuid}, {"pci_bus_id", g.pci_bus_id}, {"cuda_ordinal", optional_json(g.cuda_ordinal)},
                    {"index", g.index}});
  return json{{"gpus", gpus}, {"link", placement.worst_link.to_string()}, {"reason", placement.reason}}.dump(indent);
}

}  // namespace kiln::topology
