// Placement on the fixtures. Free memory (MiB) in the PCIe server's facts, by GPU:
//   socket 0: GPU0 80000, GPU1 81000 | GPU2 79000, GPU3 81079     (switches 0 and 1)
//   socket 1: GPU4 81079, GPU5 60000 | GPU6 81079, GPU7 81079     (switches 2 and 3)
// and in the DGX's: 81079, 80079, 79079, 81079, 80079, 79079, 81079, 80079.
#include <gtest/gtest.h>

#include "kiln/driver/error.hpp"

#include "kiln/topology/placement.hpp"
#include "kiln/topology/topology.hpp"

namespace {

using namespace kiln::topology;

constexpr std::uint64_t kMiB = 1024 * 1024;

const Topology& pcie() {
  static const Topology t =
      discover_fixture(std::string(KILN_TOPOLOGY_FIXTURES) + "/pcie-8gpu-2socket", CudaEnvironment{});
  return t;
}
const Topology& dgx() {
  static const Topology t = discover_fixture(std::string(KILN_TOPOLOGY_FIXTURES) + "/dgx-h100-8gpu", CudaEnvironment{});
  return t;
}

std::vector<std::string> buses(const Placement& p) {
  std::vector<std::string> out;
  for (const auto& g : p.gpus) out.push_back(g.pci_bus_id);
  return out;
}

#define EXPECT_CONTAINS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

TEST(Placement, TwoGpusShareASwitchWithTheMostFreeMemory) {
  const Placement p = choose(pcie(), 2);
  EXPECT_EQ(buses(p), (std::vector<std::string>{"0000:bc:00.0", "0000:bd:00.0"}));
  EXPECT_EQ(p.worst_link.to_string(), "PIX");
  EXPECT_CONTAINS(p.reason, "under one PCIe switch");
  EXPECT_CONTAINS(p.reason, "3 other sets equally connected");
  // Named by UUID and bus id, never by an ordinal alone.
  EXPECT_EQ(p.gpus[0].uuid, "GPU-8c0e0006-5e1f-4b2a-9d3c-0a1b2c3d4e06");
  EXPECT_EQ(p.gpus[0].cuda_ordinal, 6);
  EXPECT_EQ(p.gpus[0].index, 6u);
}

TEST(Placement, LoadBreaksTiesOfFreeMemory) {
  PlacementConstraints c;
  for (const auto& g : pcie().gpus()) c.free_memory[g.uuid] = 40000 * kMiB;  // the scheduler's own figures
  for (int i : {0, 1, 2, 3, 6, 7}) c.load[pcie().gpus()[static_cast<std::size_t>(i)].uuid] = 1.0;
  EXPECT_EQ(buses(choose(pcie(), 2, c)), (std::vector<std::string>{"0000:9a:00.0", "0000:9b:00.0"}));
}

TEST(Placement, ThreeOrFourStayWithinASocket) {
  const Placement four = choose(pcie(), 4);
  EXPECT_EQ(buses(four), (std::vector<std::string>{"0000:18:00.0", "0000:19:00.0", "0000:3a:00.0", "0000:3b:00.0"}));
  EXPECT_EQ(four.worst_link.to_string(), "NODE");
  EXPECT_CONTAINS(four.reason, "within NUMA node 0");
  // Three: any three of a socket are equally connected; socket 1 without GPU5 has the most memory.
  const Placement three = choose(pcie(), 3);
  EXPECT_EQ(buses(three), (std::vector<std::string>{"0000:9a:00.0", "0000:bc:00.0", "0000:bd:00.0"}));
  EXPECT_EQ(three.worst_link.to_string(), "NODE");
}

TEST(Placement, FiveSpanSockets) {
  const Placement p = choose(pcie(), 5);
  EXPECT_EQ(p.gpus.size(), 5u);
  EXPECT_EQ(p.worst_link.to_string(), "SYS");
  EXPECT_CONTAINS(p.reason, "spanning NUMA nodes");
  EXPECT_EQ(choose(pcie(), 8).gpus.size(), 8u);
}

TEST(Placement, MemoryConstraintChangesTheDomain) {
  PlacementConstraints c;
  c.min_free_memory = 80000 * kMiB;  // GPU2 (79000) and GPU5 (60000) drop out
  const Placement p = choose(pcie(), 4, c);
  EXPECT_EQ(p.worst_link.to_string(), "SYS");  // no socket keeps four eligible GPUs
  for (const auto& g : p.gpus) {
    EXPECT_NE(g.pci_bus_id, "0000:3a:00.0");
    EXPECT_NE(g.pci_bus_id, "0000:9b:00.0");
  }
  EXPECT_CONTAINS(p.reason, "among 6 eligible of 8");
  EXPECT_EQ(choose(pcie(), 3, c).worst_link.to_string(), "NODE");
}

TEST(Placement, NumaNodeAndExclusions) {
  PlacementConstraints c;
  c.numa_node = 1;
  EXPECT_EQ(buses(choose(pcie(), 4, c)),
            (std::vector<std::string>{"0000:9a:00.0", "0000:9b:00.0", "0000:bc:00.0", "0000:bd:00.0"}));
  c = {};
  c.exclude = {"0000:bc:00.0", pcie().gpus()[3].uuid};
  const Placement p = choose(pcie(), 2, c);
  EXPECT_EQ(buses(p), (std::vector<std::string>{"0000:18:00.0", "0000:19:00.0"}));
}

TEST(Placement, TooFewGpusSaysWhy) {
  PlacementConstraints c;
  c.min_free_memory = 81000 * kMiB;
  try {
    choose(pcie(), 6, c);
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(kiln::Errc::invalid_argument));
    const std::string m = e.what();
    EXPECT_CONTAINS(m, "6 GPUs wanted");
    EXPECT_CONTAINS(m, "only 5 of 8 qualify");
    EXPECT_CONTAINS(m, "GPU-8c0e0005-5e1f-4b2a-9d3c-0a1b2c3d4e05 (0000:9b:00.0) has 58.6 GiB free");
  }
  EXPECT_THROW(choose(pcie(), 0), kiln::Error);
  EXPECT_THROW(choose(pcie(), 9), kiln::Error);
}

TEST(Placement, NvLinkDomainFirst) {
  const Placement p = choose(dgx(), 4);
  EXPECT_EQ(p.worst_link.to_string(), "NV18");
  EXPECT_CONTAINS(p.reason, "all joined by NVLink (slowest pair NV18)");
  // All pairs are NV18: free memory decides (GPU0, 3, 6 have the most, then GPU1).
  EXPECT_EQ(buses(p), (std::vector<std::string>{"0000:18:00.0", "0000:2a:00.0", "0000:5d:00.0", "0000:ba:00.0"}));
}

TEST(Placement, NvLinkBeatsASharedSwitch) {
  // The PCIe server with one NVLink bridge (NV12) between GPU1 and GPU2, which sit on different
  // switches: the bridged pair wins over any PIX pair.
  MachineFacts f = pcie().facts();
  for (int l = 0; l < 12; ++l) {
    f.gpus[1].nvlinks.push_back({l, f.gpus[2].pci_bus_id, NvLinkPeerType::gpu});
    f.gpus[2].nvlinks.push_back({l, f.gpus[1].pci_bus_id, NvLinkPeerType::gpu});
  }
  DiscoveryOptions o;
  o.sysfs_root = pcie().sysfs_root();
  o.facts = f;
  o.cuda_env = CudaEnvironment{};
  const Topology t = discover(o);
  const Placement p = choose(t, 2);
  EXPECT_EQ(buses(p), (std::vector<std::string>{"0000:19:00.0", "0000:3a:00.0"}));
  EXPECT_EQ(p.worst_link.to_string(), "NV12");
}

TEST(Placement, SingleGpu) {
  const Topology vm = discover_fixture(std::string(KILN_TOPOLOGY_FIXTURES) + "/h100-x1-vm", CudaEnvironment{});
  const Placement p = choose(vm, 1);
  ASSERT_EQ(p.gpus.size(), 1u);
  EXPECT_EQ(p.gpus[0].uuid, "GPU-30885cc1-976c-340d-29af-f96e1bdbeb46");
  EXPECT_EQ(p.worst_link.to_string(), "X");
  EXPECT_THROW(choose(vm, 2), kiln::Error);
  // One of eight: the most free memory.
  EXPECT_EQ(choose(pcie(), 1).gpus[0].pci_bus_id, "0000:3b:00.0");
}

}  // namespace
