// Facts from the live driver and NVML. CUDA and NVML devices are joined by PCI bus id, which both
// report the same way whatever CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER say.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>

#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/driver/nvml_api.hpp"
#include "kiln/topology/facts.hpp"
#include "kiln/topology/identity.hpp"
#include "kiln/topology/pci_address.hpp"
#include "kiln/version.hpp"

namespace kiln::topology {
namespace {

std::string format_uuid(const CUuuid& uuid, const char* prefix) {
  const auto* b = reinterpret_cast<const unsigned char*>(uuid.bytes);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", prefix, b[0],
                b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return buf;
}

std::string canonical_bus_id(const char* text) {
  return PciAddress::parse_or_throw(text, "the bus id the driver reported").to_string();
}

GpuFacts cuda_gpu(const driver::CudaApi& cu, int ordinal) {
  CUdevice dev = 0;
  driver::check(cu.cuDeviceGet(&dev, ordinal), "cuDeviceGet");
  GpuFacts g;
  char text[256] = {};
  driver::check(cu.cuDeviceGetName(text, sizeof text, dev), "cuDeviceGetName");
  g.name = text;
  CUuuid uuid{};
  driver::check(cu.cuDeviceGetUuid(&uuid, dev), "cuDeviceGetUuid");
  g.uuid = format_uuid(uuid, "GPU-");
  driver::check(cu.cuDeviceGetPCIBusId(text, sizeof text, dev), "cuDeviceGetPCIBusId");
  g.pci_bus_id = canonical_bus_id(text);
  std::size_t total = 0;
  driver::check(cu.cuDeviceTotalMem(&total, dev), "cuDeviceTotalMem");
  g.memory_total = total;
  int major = 0, minor = 0;
  driver::check(cu.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev), "cuDeviceGetAttribute");
  driver::check(cu.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev), "cuDeviceGetAttribute");
  g.compute_capability = std::to_string(major) + "." + std::to_string(minor);
  g.cuda_ordinal = ordinal;
  return g;
}

void check_nvml(const driver::NvmlApi& nvml, driver::nvml_return r, const char* call) {
  if (r != driver::kNvmlSuccess) throw Error(Domain::nvml, r, call, nvml.nvmlErrorString(r));
}

NvLinkPeerType peer_type(driver::NvmlNvLinkDeviceType t) {
  switch (t) {
    case driver::NvmlNvLinkDeviceType::gpu: return NvLinkPeerType::gpu;
    case driver::NvmlNvLinkDeviceType::nvswitch: return NvLinkPeerType::switch_;
    case driver::NvmlNvLinkDeviceType::ibm_npu: return NvLinkPeerType::ibm_npu;
    default: return NvLinkPeerType::unknown;
  }
}

// Adds what NVML knows about `dev` (index, NVLinks, MIG, free memory) to `g`.
void add_nvml_facts(const driver::NvmlApi& nvml, driver::nvml_device dev, unsigned index, GpuFacts& g) {
  g.nvml_index = static_cast<int>(index);
  if (nvml.nvmlDeviceGetMemoryInfo) {
    driver::NvmlMemory mem{};
    if (nvml.nvmlDeviceGetMemoryInfo(dev, &mem) == driver::kNvmlSuccess) g.memory_free = mem.free;
  }
  if (nvml.nvmlDeviceGetNvLinkState && nvml.nvmlDeviceGetNvLinkRemotePciInfo_v2) {
    for (unsigned link = 0; link < driver::kNvmlNvLinkMaxLinks; ++link) {
      driver::nvml_enable_state active = 0;
      const auto r = nvml.nvmlDeviceGetNvLinkState(dev, link, &active);
      if (r == driver::kNvmlErrorNotSupported) break;  // no NVLink on this GPU
      if (r != driver::kNvmlSuccess || !active) continue;
      driver::NvmlPciInfo remote{};
      if (nvml.nvmlDeviceGetNvLinkRemotePciInfo_v2(dev, link, &remote) != driver::kNvmlSuccess) continue;
      NvLinkFacts f;
      f.link = static_cast<int>(link);
      // A far end with no PCI address here ("FFFFFFFF:FF:FF.0") is an NVSwitch the host keeps out
      // of this (virtual) machine: the link is real, its switch is not addressable.
      const auto remote_address = PciAddress::parse(remote.busId);
      f.remote_pci_bus_id = remote_address ? remote_address->to_string() : std::string();
      auto type = driver::NvmlNvLinkDeviceType::unknown;
      if (nvml.nvmlDeviceGetNvLinkRemoteDeviceType &&
          nvml.nvmlDeviceGetNvLinkRemoteDeviceType(dev, link, &type) == driver::kNvmlSuccess)
        f.remote_type = peer_type(type);
      if (!remote_address && f.remote_type == NvLinkPeerType::unknown) f.remote_type = NvLinkPeerType::switch_;
      if (!remote_address && f.remote_type == NvLinkPeerType::gpu) continue;  // a GPU we cannot name
      g.nvlinks.push_back(std::move(f));
    }
  }
  unsigned current = 0, pending = 0;
  if (nvml.nvmlDeviceGetMigMode && nvml.nvmlDeviceGetMigMode(dev, &current, &pending) == driver::kNvmlSuccess &&
      current == driver::kNvmlDeviceMigEnable) {
    g.mig_enabled = true;
    unsigned count = 0;
    if (nvml.nvmlDeviceGetMaxMigDeviceCount && nvml.nvmlDeviceGetMigDeviceHandleByIndex &&
        nvml.nvmlDeviceGetMaxMigDeviceCount(dev, &count) == driver::kNvmlSuccess) {
      for (unsigned i = 0; i < count; ++i) {
        driver::nvml_device mig = nullptr;
        if (nvml.nvmlDeviceGetMigDeviceHandleByIndex(dev, i, &mig) != driver::kNvmlSuccess) continue;  // empty slot
        MigInstance m;
        char text[96] = {};
        if (nvml.nvmlDeviceGetUUID(mig, text, sizeof text) == driver::kNvmlSuccess) m.uuid = text;
        if (nvml.nvmlDeviceGetName(mig, text, sizeof text) == driver::kNvmlSuccess) m.name = text;
        unsigned id = 0;
        if (nvml.nvmlDeviceGetGpuInstanceId && nvml.nvmlDeviceGetGpuInstanceId(mig, &id) == driver::kNvmlSuccess)
          m.gpu_instance = static_cast<int>(id);
        if (nvml.nvmlDeviceGetComputeInstanceId && nvml.nvmlDeviceGetComputeInstanceId(mig, &id) == driver::kNvmlSuccess)
          m.compute_instance = static_cast<int>(id);
        driver::NvmlMemory mem{};
        if (nvml.nvmlDeviceGetMemoryInfo && nvml.nvmlDeviceGetMemoryInfo(mig, &mem) == driver::kNvmlSuccess)
          m.memory_total = mem.total;
        g.mig_instances.push_back(std::move(m));
      }
    }
  }
}

// Every GPU NVML sees, merged into `gpus` by bus id (adding those CUDA was not shown).
void merge_nvml(std::vector<GpuFacts>& gpus) {
  const auto& state = driver::nvml_state();
  if (!state.api || !state.api->nvmlDeviceGetPciInfo_v3) return;
  const driver::NvmlApi& nvml = *state.api;
  unsigned count = 0;
  check_nvml(nvml, nvml.nvmlDeviceGetCount_v2(&count), "nvmlDeviceGetCount_v2");
  for (unsigned i = 0; i < count; ++i) {
    driver::nvml_device dev = nullptr;
    check_nvml(nvml, nvml.nvmlDeviceGetHandleByIndex_v2(i, &dev), "nvmlDeviceGetHandleByIndex_v2");
    driver::NvmlPciInfo pci{};
    check_nvml(nvml, nvml.nvmlDeviceGetPciInfo_v3(dev, &pci), "nvmlDeviceGetPciInfo_v3");
    const std::string bus = canonical_bus_id(pci.busId);
    char text[96] = {};
    check_nvml(nvml, nvml.nvmlDeviceGetUUID(dev, text, sizeof text), "nvmlDeviceGetUUID");
    const std::string uuid = text;
    GpuFacts* g = nullptr;
    for (auto& c : gpus)
      if (c.pci_bus_id == bus) g = &c;
    if (g) {
      g->uuid = uuid;
    } else {  // hidden from CUDA by CUDA_VISIBLE_DEVICES
      GpuFacts hidden;
      hidden.pci_bus_id = bus;
      hidden.uuid = uuid;
      check_nvml(nvml, nvml.nvmlDeviceGetName(dev, text, sizeof text), "nvmlDeviceGetName");
      hidden.name = text;
      driver::NvmlMemory mem{};
      if (nvml.nvmlDeviceGetMemoryInfo && nvml.nvmlDeviceGetMemoryInfo(dev, &mem) == driver::kNvmlSuccess)
        hidden.memory_total = mem.total;
      gpus.push_back(std::move(hidden));
      g = &gpus.back();
    }
    add_nvml_facts(nvml, dev, i, *g);
  }
}

std::string timestamp() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buf;
}

}  // namespace

MachineFacts record_live_facts() {
  const driver::CudaApi& cu = driver::cuda();
  MachineFacts facts;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  facts.source = std::string("recorded by kiln ") + KILN_VERSION + " on " + host + " at " + timestamp();
  facts.driver_version = driver::nvml_state().driver_version;
  facts.cuda_driver_version = driver::driver_state().cuda_version;
  facts.cuda_env = current_cuda_environment();

  int count = 0;
  driver::check(cu.cuDeviceGetCount(&count), "cuDeviceGetCount");
  if (count == 0) throw Error(Domain::driver, CUDA_ERROR_NO_DEVICE, "cuDeviceGetCount", "the driver reports no GPU");
  std::vector<CUdevice> devices;
  for (int i = 0; i < count; ++i) {
    facts.gpus.push_back(cuda_gpu(cu, i));
    CUdevice dev = 0;
    driver::check(cu.cuDeviceGet(&dev, i), "cuDeviceGet");
    devices.push_back(dev);
  }
  // NVML's UUIDs win where both know a GPU: CUDA gives a MIG instance's UUID for a MIG device.
  merge_nvml(facts.gpus);

  for (int a = 0; a < count; ++a)
    for (int b = 0; b < count; ++b) {
      if (a == b) continue;
      P2pFacts p;
      p.a = facts.gpus[static_cast<std::size_t>(a)].uuid;
      p.b = facts.gpus[static_cast<std::size_t>(b)].uuid;
      int v = 0;
      auto attr = [&](CUdevice_P2PAttribute which) {
        driver::check(cu.cuDeviceGetP2PAttribute(&v, which, devices[static_cast<std::size_t>(a)],
                                                 devices[static_cast<std::size_t>(b)]),
                      "cuDeviceGetP2PAttribute");
        return v;
      };
      p.access_supported = attr(CU_DEVICE_P2P_ATTRIBUTE_ACCESS_SUPPORTED) != 0;
      p.performance_rank = attr(CU_DEVICE_P2P_ATTRIBUTE_PERFORMANCE_RANK);
      p.native_atomics = attr(CU_DEVICE_P2P_ATTRIBUTE_NATIVE_ATOMIC_SUPPORTED) != 0;
      p.cuda_array_access = attr(CU_DEVICE_P2P_ATTRIBUTE_CUDA_ARRAY_ACCESS_SUPPORTED) != 0;
      facts.p2p.push_back(std::move(p));
    }
  return facts;
}

}  // namespace kiln::topology
