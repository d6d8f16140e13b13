// The JSON of a GPU's NVLinks and MIG instances: the same in the facts a machine is recorded as
// and in `kiln topo --json`.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "kiln/topology/facts.hpp"

namespace kiln::topology::detail {

inline nlohmann::json nvlinks_json(const std::vector<NvLinkFacts>& nvlinks) {
  nlohmann::json links = nlohmann::json::array();
  for (const auto& l : nvlinks)
    links.push_back({{"link", l.link}, {"remote_pci_bus_id", l.remote_pci_bus_id}, {"remote_type", to_string(l.remote_type)}});
  return links;
}

inline nlohmann::json mig_json(bool enabled, const std::vector<MigInstance>& instances) {
  nlohmann::json mig = {{"enabled", enabled}, {"instances", nlohmann::json::array()}};
  for (const auto& m : instances)
    mig["instances"].push_back({{"uuid", m.uuid},
                                {"gpu_instance", m.gpu_instance},
                                {"compute_instance", m.compute_instance},
                                {"name", m.name},
                                {"memory_total", m.memory_total}});
  return mig;
}

}  // namespace kiln::topology::detail
