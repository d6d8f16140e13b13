// CUDA ordinal ↔ NVML index ↔ UUID ↔ bus id under every CUDA_DEVICE_ORDER and each form of
// CUDA_VISIBLE_DEVICES. The machine: three different GPUs, so fastest-first differs from bus order.
#include <gtest/gtest.h>

#include "kiln/topology/identity.hpp"
#include "kiln/topology/topology.hpp"

namespace {

using namespace kiln::topology;

const std::string kA4000 = "GPU-a4000000-1111-2222-3333-444444444444";  // bus 01, slowest
const std::string kH100 = "GPU-b1000000-1111-2222-3333-444444444444";   // bus 41, fastest, MIG on
const std::string kL40 = "GPU-b1400000-1111-2222-3333-444444444444";    // bus 81
const std::string kMig1 = "MIG-0f0f0f0f-1111-2222-3333-444444444444";
const std::string kMig2 = "MIG-1e1e1e1e-1111-2222-3333-444444444444";

MachineFacts machine() {
  MachineFacts f;
  auto gpu = [](std::string uuid, std::string bus, std::string name, int nvml, int cuda) {
    GpuFacts g;
    g.uuid = std::move(uuid);
    g.pci_bus_id = std::move(bus);
    g.name = std::move(name);
    g.memory_total = 16ull << 30;
    g.nvml_index = nvml;
    g.cuda_ordinal = cuda;  // as CUDA numbered them with the default environment
    return g;
  };
  f.gpus.push_back(gpu(kA4000, "0000:01:00.0", "NVIDIA RTX A4000", 0, 2));
  f.gpus.push_back(gpu(kH100, "0000:41:00.0", "NVIDIA H100 PCIe", 1, 0));
  f.gpus.push_back(gpu(kL40, "0000:81:00.0", "NVIDIA L40S", 2, 1));
  f.gpus[1].mig_enabled = true;
  f.gpus[1].mig_instances.push_back({kMig1, 1, 0, "3g.40gb", 40ull << 30});
  f.gpus[1].mig_instances.push_back({kMig2, 2, 0, "3g.40gb", 40ull << 30});
  return f;
}

std::vector<std::string> uuids(const VisibleDevices& v) {
  std::vector<std::string> out;
  for (const auto& d : v.devices) out.push_back(d.mig_uuid ? *d.mig_uuid : d.gpu_uuid);
  return out;
}

VisibleDevices resolve(std::optional<std::string> order, std::optional<std::string> visible) {
  return resolve_cuda_devices(machine(), CudaEnvironment{std::move(order), std::move(visible)});
}

std::string notes(const VisibleDevices& v) {
  std::string s;
  for (const auto& n : v.notes) s += n + "\n";
  return s;
}

TEST(Identity, DefaultIsFastestFirst) {
  const auto v = resolve(std::nullopt, std::nullopt);
  EXPECT_EQ(uuids(v), (std::vector<std::string>{kH100, kL40, kA4000}));
  EXPECT_EQ(v.devices[2].ordinal, 2);
  EXPECT_EQ(v.devices[2].pci_bus_id, "0000:01:00.0");
  EXPECT_TRUE(v.notes.empty());
  // Any value but PCI_BUS_ID is the default.
  EXPECT_EQ(uuids(resolve("FASTEST_FIRST", std::nullopt)), uuids(v));
  EXPECT_EQ(uuids(resolve("pci_bus_id", std::nullopt)), uuids(v));
}

TEST(Identity, PciBusIdOrderMatchesNvml) {
  EXPECT_EQ(uuids(resolve("PCI_BUS_ID", std::nullopt)), (std::vector<std::string>{kA4000, kH100, kL40}));
}

TEST(Identity, IndicesFollowTheChosenOrder) {
  EXPECT_EQ(uuids(resolve(std::nullopt, "2,0")), (std::vector<std::string>{kA4000, kH100}));
  EXPECT_EQ(uuids(resolve("PCI_BUS_ID", "2,0")), (std::vector<std::string>{kL40, kA4000}));
  EXPECT_EQ(uuids(resolve("PCI_BUS_ID", " 1 , 2 ")), (std::vector<std::string>{kH100, kL40}));
  const auto v = resolve("PCI_BUS_ID", "2,0");
  EXPECT_EQ(v.devices[0].ordinal, 0);
  EXPECT_EQ(v.devices[1].ordinal, 1);
}

TEST(Identity, AnInvalidEntryEndsTheList) {
  // CUDA's documented example: 0,2,-1,1 shows devices 0 and 2 only.
  auto v = resolve("PCI_BUS_ID", "0,2,-1,1");
  EXPECT_EQ(uuids(v), (std::vector<std::string>{kA4000, kL40}));
  EXPECT_NE(notes(v).find("entry 3 \"-1\""), std::string::npos) << notes(v);
  v = resolve(std::nullopt, "1,7,0");
  EXPECT_EQ(uuids(v), (std::vector<std::string>{kL40}));
  EXPECT_NE(notes(v).find("index out of range (3 GPUs)"), std::string::npos) << notes(v);
  v = resolve(std::nullopt, "0,GPU-ffff,1");
  EXPECT_EQ(uuids(v), (std::vector<std::string>{kH100}));
  EXPECT_NE(notes(v).find("\"GPU-ffff\""), std::string::npos);
  v = resolve(std::nullopt, "0,0");
  EXPECT_EQ(uuids(v), (std::vector<std::string>{kH100}));
  EXPECT_NE(notes(v).find("already listed"), std::string::npos);
  v = resolve(std::nullopt, "1,foo");
  EXPECT_EQ(uuids(v), (std::vector<std::string>{kL40}));
  v = resolve(std::nullopt, "0,,1");
  EXPECT_EQ(uuids(v), (std::vector<std::string>{kH100}));
}

TEST(Identity, EmptyMeansNoGpu) {
  const auto v = resolve(std::nullopt, "");
  EXPECT_TRUE(v.devices.empty());
  EXPECT_NE(notes(v).find("empty"), std::string::npos);
}

TEST(Identity, UuidsAndTheirPrefixes) {
  EXPECT_EQ(uuids(resolve(std::nullopt, kL40 + "," + kA4000)), (std::vector<std::string>{kL40, kA4000}));
  EXPECT_EQ(uuids(resolve(std::nullopt, "GPU-a4")), (std::vector<std::string>{kA4000}));
  EXPECT_EQ(uuids(resolve(std::nullopt, "gpu-A4000000")), (std::vector<std::string>{kA4000}));
  // "GPU-b1" starts both the H100's and the L40S's UUID: ambiguous, so it ends the list.
  const auto v = resolve(std::nullopt, "GPU-a4,GPU-b1");
  EXPECT_EQ(uuids(v), (std::vector<std::string>{kA4000}));
  EXPECT_NE(notes(v).find("matches 2 GPUs"), std::string::npos) << notes(v);
  EXPECT_EQ(uuids(resolve(std::nullopt, "GPU-b14,0")), (std::vector<std::string>{kL40, kH100}));
}

TEST(Identity, MigInstances) {
  auto v = resolve(std::nullopt, kMig2);
  ASSERT_EQ(v.devices.size(), 1u);
  EXPECT_EQ(v.devices[0].gpu_uuid, kH100);
  EXPECT_EQ(v.devices[0].mig_uuid, kMig2);
  EXPECT_EQ(v.devices[0].pci_bus_id, "0000:41:00.0");
  // Legacy form: MIG-<GPU uuid>/<gpu instance>/<compute instance>.
  v = resolve(std::nullopt, "MIG-" + kH100 + "/1/0");
  EXPECT_EQ(uuids(v), (std::vector<std::string>{kMig1}));
  v = resolve(std::nullopt, "MIG-" + kH100 + "/5/0,0");
  EXPECT_TRUE(v.devices.empty());
  EXPECT_NE(notes(v).find("has no MIG instance 5/0"), std::string::npos) << notes(v);
  v = resolve(std::nullopt, "MIG-deadbeef");
  EXPECT_TRUE(v.devices.empty());
  EXPECT_NE(notes(v).find("no MIG instance has this UUID"), std::string::npos);
}

TEST(Identity, WithoutARecordedOrderBusOrderIsAssumed) {
  MachineFacts f = machine();
  f.cuda_env.visible_devices = "1";  // the recording saw only one GPU: no fastest-first order known
  const auto v = resolve_cuda_devices(f, {});
  EXPECT_EQ(uuids(v), (std::vector<std::string>{kA4000, kH100, kL40}));
  EXPECT_NE(notes(v).find("PCI bus order is assumed"), std::string::npos);
}

TEST(Identity, DiscoveryAppliesTheEnvironmentToAFixture) {
  const std::string dgx = std::string(KILN_TOPOLOGY_FIXTURES) + "/dgx-h100-8gpu";
  const Topology t = discover_fixture(dgx, CudaEnvironment{std::nullopt, "6,GPU-d6a40002"});
  ASSERT_EQ(t.cuda_devices().devices.size(), 2u);
  EXPECT_EQ(t.gpus()[6].cuda_ordinal, 0);
  EXPECT_EQ(t.gpus()[2].cuda_ordinal, 1);
  EXPECT_FALSE(t.gpus()[0].cuda_ordinal);
  EXPECT_EQ(t.find("cuda:0"), &t.gpus()[6]);
  EXPECT_EQ(t.gpus()[6].nvml_index, 6);
  // The recording's own environment: the recorded ordinals as they are.
  const Topology all = discover_fixture(dgx, CudaEnvironment{});
  for (std::size_t i = 0; i < all.gpus().size(); ++i) EXPECT_EQ(all.gpus()[i].cuda_ordinal, static_cast<int>(i));
}

}  // namespace
