// Discovery: the facts' GPUs located in sysfs, each with the chain of PCIe bridges above it, its
// NUMA node and local CPUs, then joined into a Topology.
#include <algorithm>
#include <cstdlib>

#include "kiln/driver/error.hpp"
#include "kiln/topology/topology.hpp"
#include "topology/detail/sysfs_reader.hpp"

namespace kiln::topology {
namespace {

using detail::SysfsReader;

[[noreturn]] void fail(const SysfsReader& sysfs, const std::string& what) {
  throw Error(Errc::invalid_argument,
              "sysfs tree under " + (sysfs.root().empty() ? std::string("/") : sysfs.root()) + ": " + what);
}

double parse_speed(const std::optional<std::string>& text) {
  // "32.0 GT/s PCIe", "8 GT/s", "Unknown", "2.5 GT/s"
  if (!text) return 0;
  char* end = nullptr;
  const double v = std::strtod(text->c_str(), &end);
  return end == text->c_str() ? 0 : v;
}

int parse_int_or(const std::optional<std::string>& text, int fallback) {
  if (!text || text->empty()) return fallback;
  char* end = nullptr;
  const long v = std::strtol(text->c_str(), &end, 0);
  return *end == '\0' ? static_cast<int>(v) : fallback;
}

PcieLinkStatus read_link(const SysfsReader& sysfs, const std::string& dir) {
  PcieLinkStatus link;
  link.current_gts = parse_speed(sysfs.read(dir + "/current_link_speed"));
  link.current_width = parse_int_or(sysfs.read(dir + "/current_link_width"), 0);
  link.max_gts = parse_speed(sysfs.read(dir + "/max_link_speed"));
  link.max_width = parse_int_or(sysfs.read(dir + "/max_link_width"), 0);
  return link;
}

CpuList read_local_cpus(const SysfsReader& sysfs, const std::string& dir, const std::string& label) {
  try {
    if (auto list = sysfs.read(dir + "/local_cpulist")) return CpuList::parse(*list);
    if (auto mask = sysfs.read(dir + "/local_cpus")) return CpuList::parse_mask(*mask);
  } catch (const Error& e) {
    fail(sysfs, dir + "/local_cpulist of " + label + ": " + e.detail());
  }
  fail(sysfs, "neither " + dir + "/local_cpulist nor local_cpus exists (the CPUs local to " + label + ")");
}

struct PciPath {
  std::string host_bridge;              // "pci0000:17"
  std::vector<std::string> components;  // the bridges then the device, from the host bridge down
};

PciPath split_device_path(const SysfsReader& sysfs, const std::string& path, const std::string& label) {
  // /sys/devices/pci0000:17/0000:17:01.0/0000:18:00.0/...
  const std::string prefix = "/sys/devices/";
  if (path.rfind(prefix, 0) != 0)
    fail(sysfs, label + " resolves to " + path + ", which is not under /sys/devices");
  PciPath out;
  std::size_t pos = prefix.size();
  while (pos < path.size()) {
    auto slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    const std::string part = path.substr(pos, slash - pos);
    if (out.host_bridge.empty()) {
      if (part.rfind("pci", 0) != 0 || !PciAddress::parse(part.substr(3) + ":00.0"))
        fail(sysfs, label + " resolves to " + path + ", which is not below a PCI host bridge (/sys/devices/pciDDDD:BB)");
      out.host_bridge = part;
    } else {
      if (!PciAddress::parse(part))
        fail(sysfs, label + " resolves to " + path + ": \"" + part + "\" is not a PCI address");
      out.components.push_back(part);
    }
    pos = slash + 1;
  }
  if (out.components.empty()) fail(sysfs, label + " resolves to " + path + ", which names no PCI device");
  return out;
}

Gpu read_gpu(const SysfsReader& sysfs, const GpuFacts& facts) {
  const PciAddress address = PciAddress::parse_or_throw(facts.pci_bus_id, "the GPU's PCI bus id");
  const std::string bdf = address.to_string();
  const std::string label = "GPU " + facts.uuid + " (" + bdf + ")";
  const auto resolved = sysfs.resolve_pci_device(bdf);
  if (!resolved)
    fail(sysfs, "no /sys/bus/pci/devices/" + bdf + " (neither a symlink nor a .link file) for " + label +
                    ": the tree does not describe this machine's GPUs");
  const PciPath path = split_device_path(sysfs, *resolved, label);
  if (path.components.back() != bdf)
    fail(sysfs, "/sys/bus/pci/devices/" + bdf + " leads to " + *resolved + ", another device");

  const std::string dir = *resolved;
  if (!sysfs.exists(dir)) fail(sysfs, dir + " does not exist, though /sys/bus/pci/devices/" + bdf + " leads there");
  const std::string vendor = sysfs.read_required(dir + "/vendor", "the vendor id of " + label);
  if (vendor != "0x10de") fail(sysfs, dir + "/vendor is " + vendor + ", not NVIDIA's 0x10de, for " + label);

  Gpu gpu;
  gpu.uuid = facts.uuid;
  gpu.name = facts.name;
  gpu.compute_capability = facts.compute_capability;
  gpu.nvml_index = facts.nvml_index;
  gpu.pci = address;
  gpu.memory_total = facts.memory_total;
  gpu.memory_free = facts.memory_free;
  gpu.nvlinks = facts.nvlinks;
  gpu.mig_enabled = facts.mig_enabled;
  gpu.mig_instances = facts.mig_instances;
  gpu.numa_node = parse_int_or(sysfs.read(dir + "/numa_node"), -1);
  gpu.cpus = read_local_cpus(sysfs, dir, label);
  gpu.link = read_link(sysfs, dir);
  gpu.host_bridge = path.host_bridge;

  // The bridges from the root port down; sysfs nests each device in the folder of its bridge.
  std::string bridge_dir = "/sys/devices/" + path.host_bridge;
  for (std::size_t i = 0; i + 1 < path.components.size(); ++i) {
    bridge_dir += "/" + path.components[i];
    const std::string cls = sysfs.read_required(bridge_dir + "/class", "the class of a bridge above " + label);
    if (cls.rfind("0x0604", 0) != 0)
      fail(sysfs, bridge_dir + "/class is " + cls + ", not a PCI bridge (0x0604xx), yet " + label + " is below it");
    PciBridge bridge;
    bridge.address = *PciAddress::parse(path.components[i]);
    // PCIe alternates below a root port: switch upstream port, its downstream ports, the next
    // switch's upstream port, ...
    bridge.role = i == 0 ? BridgeRole::root_port : (i % 2 == 1 ? BridgeRole::switch_upstream : BridgeRole::switch_downstream);
    bridge.vendor_id = sysfs.read(bridge_dir + "/vendor").value_or("");
    bridge.device_id = sysfs.read(bridge_dir + "/device").value_or("");
    bridge.link = read_link(sysfs, bridge_dir);
    gpu.upstream.push_back(std::move(bridge));
  }
  std::reverse(gpu.upstream.begin(), gpu.upstream.end());  // nearest first
  return gpu;
}

std::vector<NumaNode> read_numa_nodes(const SysfsReader& sysfs) {
  std::vector<NumaNode> nodes;
  for (const auto& name : sysfs.list("/sys/devices/system/node")) {
    if (name.rfind("node", 0) != 0 || name.size() == 4 ||
        !std::all_of(name.begin() + 4, name.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    const std::string dir = "/sys/devices/system/node/" + name;
    NumaNode node;
    node.id = std::stoi(name.substr(4));
    const std::string cpulist = sysfs.read_required(dir + "/cpulist", "the CPUs of NUMA " + name);
    try {
      node.cpus = CpuList::parse(cpulist);
    } catch (const Error& e) {
      fail(sysfs, dir + "/cpulist: " + e.detail());
    }
    if (auto distances = sysfs.read(dir + "/distance")) {
      std::size_t pos = 0;
      while (pos < distances->size()) {
        auto space = distances->find(' ', pos);
        if (space == std::string::npos) space = distances->size();
        if (space > pos) node.distances.push_back(parse_int_or(distances->substr(pos, space - pos), 0));
        pos = space + 1;
      }
    }
    nodes.push_back(std::move(node));
  }
  std::sort(nodes.begin(), nodes.end(), [](const NumaNode& a, const NumaNode& b) { return a.id < b.id; });
  return nodes;
}

CpuList numa_affinity(const Gpu& gpu, const std::vector<NumaNode>& nodes) {
  if (gpu.numa_node >= 0) return CpuList({gpu.numa_node});
  // No node from the firmware (common in VMs): the nodes whose CPUs are local to the GPU, as
  // nvidia-smi does.
  std::vector<int> ids;
  for (const auto& n : nodes)
    if (n.cpus.intersects(gpu.cpus)) ids.push_back(n.id);
  return CpuList(std::move(ids));
}

bool same_environment(const CudaEnvironment& a, const CudaEnvironment& b) {
  return a.device_order == b.device_order && a.visible_devices == b.visible_devices;
}

VisibleDevices recorded_devices(const MachineFacts& facts) {
  VisibleDevices out;
  for (const auto& g : facts.gpus)
    if (g.cuda_ordinal) out.devices.push_back({*g.cuda_ordinal, g.uuid, g.pci_bus_id, std::nullopt});
  std::sort(out.devices.begin(), out.devices.end(),
            [](const CudaDevice& a, const CudaDevice& b) { return a.ordinal < b.ordinal; });
  return out;
}

}  // namespace

std::string default_sysfs_root() {
  const char* v = std::getenv("KILN_SYSFS_ROOT");
  return v && *v ? std::string(v) : std::string("/");
}

Topology discover(DiscoveryOptions options) {
  const SysfsReader sysfs(options.sysfs_root.empty() ? default_sysfs_root() : options.sysfs_root);
  if (!sysfs.exists("/sys/bus/pci/devices"))
    fail(sysfs, "there is no sys/bus/pci/devices folder: not a sysfs tree (check KILN_SYSFS_ROOT or the fixture)");
  MachineFacts facts = options.facts ? std::move(*options.facts) : record_live_facts();

  std::vector<Gpu> gpus;
  for (const auto& f : facts.gpus) gpus.push_back(read_gpu(sysfs, f));
  const std::vector<NumaNode> nodes = read_numa_nodes(sysfs);
  for (auto& g : gpus) g.numa_affinity = numa_affinity(g, nodes);

  // nvidia-smi's order: NVML's index where known, which follows the PCI bus.
  std::stable_sort(gpus.begin(), gpus.end(), [](const Gpu& a, const Gpu& b) {
    if (a.nvml_index && b.nvml_index) return *a.nvml_index < *b.nvml_index;
    return a.pci < b.pci;
  });

  const CudaEnvironment env = options.cuda_env ? *options.cuda_env : current_cuda_environment();
  VisibleDevices devices =
      same_environment(env, facts.cuda_env) ? recorded_devices(facts) : resolve_cuda_devices(facts, env);
  for (auto& g : gpus)
    for (const auto& d : devices.devices)
      if (d.gpu_uuid == g.uuid) {
        g.cuda_ordinal = d.ordinal;
        break;
      }
  return Topology(std::move(gpus), nodes, std::move(facts), std::move(devices), sysfs.root().empty() ? "/" : sysfs.root());
}

Topology discover_fixture(const std::string& dir, std::optional<CudaEnvironment> cuda_env) {
  DiscoveryOptions options;
  options.sysfs_root = dir + "/sysfs";
  options.facts = load_facts(dir + "/facts.json");
  options.cuda_env = std::move(cuda_env);
  return discover(std::move(options));
}

}  // namespace kiln::topology
