// The facts file format, "kiln-topology-facts/1" (docs/TOPOLOGY.md). Every field error names the
// file and the field's path, e.g. `facts.json: gpus[2].pci_bus_id: "zz" is not a PCI address`.
#include <fstream>
#include <nlohmann/json.hpp>

#include "topology/detail/facts_json_parts.hpp"
#include <sstream>

#include "kiln/driver/error.hpp"
#include "kiln/topology/facts.hpp"
#include "kiln/topology/pci_address.hpp"

namespace kiln::topology {
namespace {

using nlohmann::json;

class Reader {
 public:
  explicit Reader(std::string_view origin) : origin_(origin) {}

  [[noreturn]] void fail(const std::string& path, const std::string& why) const {
    throw Error(Errc::invalid_argument, origin_ + ": " + path + ": " + why);
  }

  const json& field(const json& obj, const std::string& path, const char* key) const {
    auto it = obj.find(key);
    if (it == obj.end()) fail(path + "." + key, "missing");
    return *it;
  }
  std::string string(const json& obj, const std::string& path, const char* key) const {
    const json& v = field(obj, path, key);
    if (!v.is_string()) fail(path + "." + key, "expected a string, found " + v.dump());
    return v.get<std::string>();
  }
  std::optional<std::string> optional_string(const json& obj, const std::string& path, const char* key) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) fail(path + "." + key, "expected a string or null, found " + it->dump());
    return it->get<std::string>();
  }
  std::int64_t integer(const json& obj, const std::string& path, const char* key) const {
    const json& v = field(obj, path, key);
    if (!v.is_number_integer()) fail(path + "." + key, "expected an integer, found " + v.dump());
    return v.get<std::int64_t>();
  }
  std::optional<std::int64_t> optional_integer(const json& obj, const std::string& path, const char* key) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return std::nullopt;
    if (!it->is_number_integer()) fail(path + "." + key, "expected an integer or null, found " + it->dump());
    return it->get<std::int64_t>();
  }
  bool boolean(const json& obj, const std::string& path, const char* key, bool fallback) const {
    auto it = obj.find(key);
    if (it == obj.end()) return fallback;
    if (!it->is_boolean()) fail(path + "." + key, "expected true or false, found " + it->dump());
    return it->get<bool>();
  }
  const json& array(const json& obj, const std::string& path, const char* key, bool required) const {
    static const json empty = json::array();
    auto it = obj.find(key);
    if (it == obj.end()) {
      if (required) fail(path + "." + key, "missing");
      return empty;
    }
    if (!it->is_array()) fail(path + "." + key, "expected an array, found " + it->dump());
    return *it;
  }
  std::string bus_id(const json& obj, const std::string& path, const char* key) const {
    const std::string text = string(obj, path, key);
    auto a = PciAddress::parse(text);
    if (!a) fail(path + "." + key, "\"" + text + "\" is not a PCI address (expected e.g. 0000:3b:00.0)");
    return a->to_string();
  }

 private:
  std::string origin_;
};

NvLinkPeerType parse_peer_type(const Reader& r, const std::string& path, const std::string& text) {
  for (auto t : {NvLinkPeerType::gpu, NvLinkPeerType::switch_, NvLinkPeerType::ibm_npu, NvLinkPeerType::unknown})
    if (text == to_string(t)) return t;
  r.fail(path, "\"" + text + "\" is not one of gpu, switch, ibm_npu, unknown");
}

GpuFacts parse_gpu(const Reader& r, const json& g, const std::string& path) {
  if (!g.is_object()) r.fail(path, "expected an object");
  GpuFacts gpu;
  gpu.uuid = r.string(g, path, "uuid");
  if (gpu.uuid.rfind("GPU-", 0) != 0) r.fail(path + ".uuid", "\"" + gpu.uuid + "\" does not start with GPU-");
  gpu.pci_bus_id = r.bus_id(g, path, "pci_bus_id");
  gpu.name = r.string(g, path, "name");
  gpu.compute_capability = r.optional_string(g, path, "compute_capability").value_or("");
  const auto total = r.integer(g, path, "memory_total");
  if (total < 0) r.fail(path + ".memory_total", "negative");
  gpu.memory_total = static_cast<std::uint64_t>(total);
  if (auto f = r.optional_integer(g, path, "memory_free")) {
    if (*f < 0 || *f > total) r.fail(path + ".memory_free", std::to_string(*f) + " is not within 0..memory_total");
    gpu.memory_free = static_cast<std::uint64_t>(*f);
  }
  if (auto i = r.optional_integer(g, path, "nvml_index")) gpu.nvml_index = static_cast<int>(*i);
  if (auto i = r.optional_integer(g, path, "cuda_ordinal")) gpu.cuda_ordinal = static_cast<int>(*i);
  const json& links = r.array(g, path, "nvlinks", false);
  for (std::size_t i = 0; i < links.size(); ++i) {
    const std::string lp = path + ".nvlinks[" + std::to_string(i) + "]";
    NvLinkFacts link;
    link.link = static_cast<int>(r.integer(links[i], lp, "link"));
    link.remote_type = parse_peer_type(r, lp + ".remote_type", r.string(links[i], lp, "remote_type"));
    // A switch the machine does not expose (an NVSwitch outside a VM) has no address: "".
    if (link.remote_type != NvLinkPeerType::gpu && r.string(links[i], lp, "remote_pci_bus_id").empty())
      link.remote_pci_bus_id.clear();
    else
      link.remote_pci_bus_id = r.bus_id(links[i], lp, "remote_pci_bus_id");
    gpu.nvlinks.push_back(std::move(link));
  }
  if (auto mig = g.find("mig"); mig != g.end() && !mig->is_null()) {
    const std::string mp = path + ".mig";
    gpu.mig_enabled = r.boolean(*mig, mp, "enabled", false);
    const json& instances = r.array(*mig, mp, "instances", false);
    for (std::size_t i = 0; i < instances.size(); ++i) {
      const std::string ip = mp + ".instances[" + std::to_string(i) + "]";
      MigInstance m;
      m.uuid = r.string(instances[i], ip, "uuid");
      if (m.uuid.rfind("MIG-", 0) != 0) r.fail(ip + ".uuid", "\"" + m.uuid + "\" does not start with MIG-");
      m.gpu_instance = static_cast<int>(r.integer(instances[i], ip, "gpu_instance"));
      m.compute_instance = static_cast<int>(r.integer(instances[i], ip, "compute_instance"));
      m.name = r.optional_string(instances[i], ip, "name").value_or("");
      m.memory_total = static_cast<std::uint64_t>(r.optional_integer(instances[i], ip, "memory_total").value_or(0));
      gpu.mig_instances.push_back(std::move(m));
    }
  }
  return gpu;
}

json optional_json(const std::optional<std::string>& v) { return v ? json(*v) : json(nullptr); }

}  // namespace

std::string_view to_string(NvLinkPeerType type) noexcept {
  switch (type) {
    case NvLinkPeerType::gpu: return "gpu";
    case NvLinkPeerType::switch_: return "switch";
    case NvLinkPeerType::ibm_npu: return "ibm_npu";
    case NvLinkPeerType::unknown: return "unknown";
  }
  return "unknown";
}

const GpuFacts* MachineFacts::find_by_uuid(std::string_view uuid) const noexcept {
  for (const auto& g : gpus)
    if (g.uuid == uuid) return &g;
  return nullptr;
}

const P2pFacts* MachineFacts::find_p2p(std::string_view a, std::string_view b) const noexcept {
  for (const auto& p : p2p)
    if (p.a == a && p.b == b) return &p;
  return nullptr;
}

MachineFacts parse_facts(std::string_view json_text, std::string_view origin) {
  const Reader r(origin);
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::parse_error& e) {
    r.fail("(document)", std::string("not valid JSON: ") + e.what());
  }
  if (!root.is_object()) r.fail("(document)", "expected a JSON object");
  const std::string format = r.string(root, "", "format");
  if (format != kFactsFormat)
    r.fail(".format", "\"" + format + "\" is not " + std::string(kFactsFormat));
  MachineFacts facts;
  facts.source = r.optional_string(root, "", "source").value_or("");
  facts.driver_version = r.optional_string(root, "", "driver_version").value_or("");
  facts.cuda_driver_version = static_cast<int>(r.optional_integer(root, "", "cuda_driver_version").value_or(0));
  if (auto env = root.find("cuda_env"); env != root.end() && env->is_object()) {
    facts.cuda_env.device_order = r.optional_string(*env, ".cuda_env", "CUDA_DEVICE_ORDER");
    facts.cuda_env.visible_devices = r.optional_string(*env, ".cuda_env", "CUDA_VISIBLE_DEVICES");
  }
  const json& gpus = r.array(root, "", "gpus", true);
  for (std::size_t i = 0; i < gpus.size(); ++i) {
    GpuFacts g = parse_gpu(r, gpus[i], "gpus[" + std::to_string(i) + "]");
    for (const auto& other : facts.gpus) {
      if (other.uuid == g.uuid) r.fail("gpus[" + std::to_string(i) + "].uuid", g.uuid + " appears twice");
      if (other.pci_bus_id == g.pci_bus_id)
        r.fail("gpus[" + std::to_string(i) + "].pci_bus_id", g.pci_bus_id + " appears twice");
    }
    facts.gpus.push_back(std::move(g));
  }
  const json& p2p = r.array(root, "", "p2p", false);
  for (std::size_t i = 0; i < p2p.size(); ++i) {
    const std::string pp = "p2p[" + std::to_string(i) + "]";
    P2pFacts p;
    p.a = r.string(p2p[i], pp, "a");
    p.b = r.string(p2p[i], pp, "b");
    for (const auto* uuid : {&p.a, &p.b})
      if (!facts.find_by_uuid(*uuid)) r.fail(pp, *uuid + " is not one of the GPUs listed");
    p.access_supported = r.boolean(p2p[i], pp, "access_supported", false);
    p.performance_rank = static_cast<int>(r.optional_integer(p2p[i], pp, "performance_rank").value_or(0));
    p.native_atomics = r.boolean(p2p[i], pp, "native_atomics", false);
    p.cuda_array_access = r.boolean(p2p[i], pp, "cuda_array_access", false);
    facts.p2p.push_back(std::move(p));
  }
  return facts;
}

std::string facts_to_json(const MachineFacts& facts) {
  json root;
  root["format"] = kFactsFormat;
  root["source"] = facts.source;
  root["driver_version"] = facts.driver_version;
  root["cuda_driver_version"] = facts.cuda_driver_version;
  root["cuda_env"] = {{"CUDA_DEVICE_ORDER", optional_json(facts.cuda_env.device_order)},
                      {"CUDA_VISIBLE_DEVICES", optional_json(facts.cuda_env.visible_devices)}};
  root["gpus"] = json::array();
  for (const auto& g : facts.gpus) {
    json j{{"uuid", g.uuid},
           {"pci_bus_id", g.pci_bus_id},
           {"name", g.name},
           {"compute_capability", g.compute_capability},
           {"memory_total", g.memory_total}};
    j["memory_free"] = g.memory_free ? json(*g.memory_free) : json(nullptr);
    j["nvml_index"] = g.nvml_index ? json(*g.nvml_index) : json(nullptr);
    j["cuda_ordinal"] = g.cuda_ordinal ? json(*g.cuda_ordinal) : json(nullptr);
    j["nvlinks"] = detail::nvlinks_json(g.nvlinks);
    j["mig"] = detail::mig_json(g.mig_enabled, g.mig_instances);
    root["gpus"].push_back(std::move(j));
  }
  root["p2p"] = json::array();
  for (const auto& p : facts.p2p)
    root["p2p"].push_back({{"a", p.a},
                           {"b", p.b},
                           {"access_supported", p.access_supported},
                           {"performance_rank", p.performance_rank},
                           {"native_atomics", p.native_atomics},
                           {"cuda_array_access", p.cuda_array_access}});
  return root.dump(2) + "\n";
}

MachineFacts load_facts(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(Errc::invalid_argument, "cannot read the facts file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return parse_facts(text.str(), path);
}

}  // namespace kiln::topology
