#include "kiln/topology/identity.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "kiln/topology/pci_address.hpp"

namespace kiln::topology {
namespace {

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  if (prefix.size() > text.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(text[i])) != std::tolower(static_cast<unsigned char>(prefix[i])))
      return false;
  return true;
}

// The GPUs in the order CUDA numbers them when every GPU is visible.
std::vector<const GpuFacts*> base_order(const MachineFacts& facts, DeviceOrder order, std::vector<std::string>& notes) {
  std::vector<const GpuFacts*> gpus;
  for (const auto& g : facts.gpus) gpus.push_back(&g);
  auto by_bus = [](const GpuFacts* a, const GpuFacts* b) {
    return PciAddress::parse_or_throw(a->pci_bus_id, "bus id") < PciAddress::parse_or_throw(b->pci_bus_id, "bus id");
  };
  if (order == DeviceOrder::pci_bus_id) {
    std::stable_sort(gpus.begin(), gpus.end(), by_bus);
    return gpus;
  }
  const bool recorded = facts.cuda_env.is_default() &&
                        std::all_of(gpus.begin(), gpus.end(), [](const GpuFacts* g) { return g->cuda_ordinal.has_value(); });
  if (recorded) {
    std::stable_sort(gpus.begin(), gpus.end(),
                     [](const GpuFacts* a, const GpuFacts* b) { return *a->cuda_ordinal < *b->cuda_ordinal; });
  } else {
    std::stable_sort(gpus.begin(), gpus.end(), by_bus);
    if (gpus.size() > 1)
      notes.push_back("the facts hold no fastest-first order (recorded under another CUDA environment); "
                      "PCI bus order is assumed, which is what CUDA does for identical GPUs");
  }
  return gpus;
}

struct Resolved {
  const GpuFacts* gpu = nullptr;
  const MigInstance* mig = nullptr;
  std::string problem;  // why the entry names no device
};

Resolved resolve_mig(const MachineFacts& facts, const std::string& entry) {
  // Legacy form: MIG-GPU-<uuid>/<gpu instance>/<compute instance>.
  if (entry.rfind("MIG-GPU-", 0) == 0) {
    const auto slash = entry.find('/');
    const auto slash2 = slash == std::string::npos ? slash : entry.find('/', slash + 1);
    if (slash2 == std::string::npos) return {nullptr, nullptr, "expected MIG-GPU-<uuid>/<gi>/<ci>"};
    const std::string uuid = entry.substr(4, slash - 4);
    const std::string gi = entry.substr(slash + 1, slash2 - slash - 1);
    const std::string ci = entry.substr(slash2 + 1);
    if (!all_digits(gi) || !all_digits(ci)) return {nullptr, nullptr, "instance ids must be numbers"};
    const GpuFacts* gpu = facts.find_by_uuid(uuid);
    if (!gpu) return {nullptr, nullptr, "no GPU has UUID " + uuid};
    for (const auto& m : gpu->mig_instances)
      if (m.gpu_instance == std::stoi(gi) && m.compute_instance == std::stoi(ci)) return {gpu, &m, {}};
    return {nullptr, nullptr, uuid + " has no MIG instance " + gi + "/" + ci};
  }
  const GpuFacts* found_gpu = nullptr;
  const MigInstance* found = nullptr;
  int matches = 0;
  for (const auto& g : facts.gpus)
    for (const auto& m : g.mig_instances)
      if (starts_with_nocase(m.uuid, entry)) {
        ++matches;
        found_gpu = &g;
        found = &m;
      }
  if (matches == 0) return {nullptr, nullptr, "no MIG instance has this UUID"};
  if (matches > 1) return {nullptr, nullptr, "the prefix matches " + std::to_string(matches) + " MIG instances"};
  return {found_gpu, found, {}};
}

Resolved resolve_entry(const MachineFacts& facts, const std::vector<const GpuFacts*>& order, const std::string& entry) {
  if (entry.empty()) return {nullptr, nullptr, "empty entry"};
  if (all_digits(entry)) {
    if (entry.size() > 9 || std::stoul(entry) >= order.size())
      return {nullptr, nullptr, "index out of range (" + std::to_string(order.size()) + " GPUs)"};
    return {order[std::stoul(entry)], nullptr, {}};
  }
  if (starts_with_nocase(entry, "MIG-")) return resolve_mig(facts, entry);
  if (starts_with_nocase(entry, "GPU-")) {
    const GpuFacts* found = nullptr;
    int matches = 0;
    for (const auto& g : facts.gpus)
      if (starts_with_nocase(g.uuid, entry)) {
        ++matches;
        found = &g;
      }
    if (matches == 0) return {nullptr, nullptr, "no GPU has a UUID starting so"};
    if (matches > 1) return {nullptr, nullptr, "the prefix matches " + std::to_string(matches) + " GPUs"};
    return {found, nullptr, {}};
  }
  return {nullptr, nullptr, "neither an index, a GPU- UUID nor a MIG- id"};
}

}  // namespace

DeviceOrder parse_device_order(const std::optional<std::string>& value) noexcept {
  return value && *value == "PCI_BUS_ID" ? DeviceOrder::pci_bus_id : DeviceOrder::fastest_first;
}

VisibleDevices resolve_cuda_devices(const MachineFacts& facts, const CudaEnvironment& env) {
  VisibleDevices out;
  const auto order = base_order(facts, parse_device_order(env.device_order), out.notes);
  auto add = [&](const GpuFacts& g, const MigInstance* mig) {
    out.devices.push_back({static_cast<int>(out.devices.size()), g.uuid, g.pci_bus_id,
                           mig ? std::optional<std::string>(mig->uuid) : std::nullopt});
  };
  if (!env.visible_devices) {
    for (const GpuFacts* g : order) add(*g, nullptr);
    return out;
  }
  const std::string& list = *env.visible_devices;
  if (trim(list).empty()) {
    out.notes.push_back("CUDA_VISIBLE_DEVICES is empty: CUDA sees no GPU");
    return out;
  }
  std::size_t pos = 0;
  for (int n = 1; pos <= list.size(); ++n) {
    auto comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    const std::string entry = trim(std::string_view(list).substr(pos, comma - pos));
    pos = comma + 1;
    Resolved r = resolve_entry(facts, order, entry);
    if (r.gpu) {
      for (const auto& d : out.devices)
        if (d.gpu_uuid == r.gpu->uuid && d.mig_uuid == (r.mig ? std::optional<std::string>(r.mig->uuid) : std::nullopt))
          r = {nullptr, nullptr, "names a device already listed"};
    }
    if (!r.gpu) {
      out.notes.push_back("CUDA_VISIBLE_DEVICES entry " + std::to_string(n) + " \"" + entry + "\" (" + r.problem +
                          "): CUDA ignores it and every entry after it");
      break;
    }
    add(*r.gpu, r.mig);
  }
  return out;
}

CudaEnvironment current_cuda_environment() {
  CudaEnvironment env;
  if (const char* v = std::getenv("CUDA_DEVICE_ORDER")) env.device_order = v;
  if (const char* v = std::getenv("CUDA_VISIBLE_DEVICES")) env.visible_devices = v;
  return env;
}

}  // namespace kiln::topology
