#include "kiln/driver/environment_json.hpp"

#include <nlohmann/json.hpp>

#include "kiln/driver/cuda_api.hpp"

namespace kiln::driver {
namespace {

nlohmann::json to_json(const LibraryReport& lib) {
  nlohmann::json j{{"found", lib.found}, {"copies", lib.copies}};
  j["path"] = lib.found ? nlohmann::json(lib.path) : nlohmann::json(nullptr);
  j["version"] = lib.version.empty() ? nlohmann::json(nullptr) : nlohmann::json(lib.version);
  if (!lib.found) j["error"] = lib.failure;
  if (!lib.tried.empty()) j["tried"] = lib.tried;
  return j;
}

std::string arch_name(int arch) { return "sm_" + std::to_string(arch); }

nlohmann::json report_json(const EnvironmentReport& r) {
  nlohmann::json j;
  j["kiln"] = {{"version", r.kiln_version},
               {"built_cuda_version", driver::format_cuda_version(r.built_cuda_version)}};
  j["system"] = {{"os", r.os}, {"arch", r.arch}};
  j["driver"] = to_json(r.driver);
  j["driver"]["cuda_version"] = r.driver_cuda_version
                                    ? nlohmann::json(driver::format_cuda_version(r.driver_cuda_version))
                                    : nlohmann::json(nullptr);
  if (!r.driver_init.empty()) j["driver"]["init"] = r.driver_init;
  j["nvrtc"] = to_json(r.nvrtc);
  j["nvrtc"]["supported_archs"] = nlohmann::json::array();
  for (int a : r.nvrtc_archs) j["nvrtc"]["supported_archs"].push_back(arch_name(a));
  j["nvml"] = to_json(r.nvml);
  j["nvjitlink"] = to_json(r.nvjitlink);
  j["toolkit"] = {{"root", r.toolkit_root}, {"include", r.toolkit_include}, {"cccl", r.toolkit_cccl}};
  j["gpus"] = nlohmann::json::array();
  for (const auto& g : r.gpus)
    j["gpus"].push_back({{"ordinal", g.ordinal},
                         {"name", g.name},
                         {"uuid", g.uuid},
                         {"pci_bus_id", g.pci_bus_id},
                         {"compute_capability", std::to_string(g.cc_major) + "." + std::to_string(g.cc_minor)},
                         {"memory_total", g.memory_total},
                         {"memory_free", g.memory_free},
                         {"multiprocessors", g.multiprocessors},
                         {"nvrtc_can_compile", g.nvrtc_can_compile},
                         {"nvml_index", g.nvml_index >= 0 ? nlohmann::json(g.nvml_index) : nlohmann::json(nullptr)}});
  j["cuda_device_order"] = r.cuda_device_order.empty() ? "FASTEST_FIRST (default)" : r.cuda_device_order;
  j["cuda_visible_devices"] =
      r.cuda_visible_devices_set ? nlohmann::json(r.cuda_visible_devices) : nlohmann::json(nullptr);
  j["problems"] = nlohmann::json::array();
  for (const auto& p : r.problems) j["problems"].push_back({{"id", p.id}, {"message", p.message}, {"hint", p.hint}});
  j["notes"] = nlohmann::json::array();
  for (const auto& p : r.notes) j["notes"].push_back({{"id", p.id}, {"message", p.message}, {"hint", p.hint}});
  j["healthy"] = r.healthy();
  return j;
}

}  // namespace

std::string environment_to_json(const EnvironmentReport& report, int indent) { return report_json(report).dump(indent); }

}  // namespace kiln::driver
