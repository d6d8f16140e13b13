// Link classes that the shipped fixtures do not show (PXB, PHB, NV# between direct peers, NODE
// within one NUMA node), on small sysfs trees built with real symlinks as the kernel makes them.
#include <gtest/gtest.h>

#include "kiln/driver/error.hpp"

#include "kiln/topology/matrix.hpp"
#include "kiln/topology/topology.hpp"
#include "support/sysfs_tree.hpp"

namespace {

using kiln::testing::simple_facts;
using kiln::testing::SysfsTree;
using kiln::testing::TempDir;
using namespace kiln::topology;

// pci0000:00
//   00:01.0 root port -> GPU 01:00.0                              (A)
//   00:02.0 root port -> GPU 02:00.0                              (B)
//   00:03.0 root port -> switch 03:00.0 -> 04:00.0 -> switch 05:00.0 -> 06:00.0 -> GPU 07:00.0  (C)
//                                       -> 04:01.0 -> GPU 08:00.0                               (D)
// pci0000:40 (same NUMA node)
//   40:01.0 root port -> GPU 41:00.0                              (E)
class Classification : public ::testing::Test {
 protected:
  void SetUp() override {
    SysfsTree tree(dir.path());
    const std::string hb = "/sys/devices/pci0000:00";
    tree.bridge(hb + "/0000:00:01.0");
    tree.gpu(hb + "/0000:00:01.0/0000:01:00.0");
    tree.link(hb + "/0000:00:01.0/0000:01:00.0");
    tree.bridge(hb + "/0000:00:02.0");
    tree.gpu(hb + "/0000:00:02.0/0000:02:00.0");
    tree.link(hb + "/0000:00:02.0/0000:02:00.0");
    const std::string sw1 = hb + "/0000:00:03.0/0000:03:00.0";
    for (const auto& d : {hb + "/0000:00:03.0", sw1, sw1 + "/0000:04:00.0", sw1 + "/0000:04:00.0/0000:05:00.0",
                          sw1 + "/0000:04:00.0/0000:05:00.0/0000:06:00.0", sw1 + "/0000:04:01.0"})
      tree.bridge(d);
    tree.gpu(sw1 + "/0000:04:00.0/0000:05:00.0/0000:06:00.0/0000:07:00.0");
    tree.link(sw1 + "/0000:04:00.0/0000:05:00.0/0000:06:00.0/0000:07:00.0");
    tree.gpu(sw1 + "/0000:04:01.0/0000:08:00.0");
    tree.link(sw1 + "/0000:04:01.0/0000:08:00.0");
    tree.bridge("/sys/devices/pci0000:40/0000:40:01.0");
    tree.gpu("/sys/devices/pci0000:40/0000:40:01.0/0000:41:00.0");
    tree.link("/sys/devices/pci0000:40/0000:40:01.0/0000:41:00.0");
    tree.numa_node(0, "0-3");
    facts = simple_facts({{"GPU-aaaaaaaa-0000-0000-0000-000000000001", "0000:01:00.0"},
                          {"GPU-bbbbbbbb-0000-0000-0000-000000000002", "0000:02:00.0"},
                          {"GPU-cccccccc-0000-0000-0000-000000000003", "0000:07:00.0"},
                          {"GPU-dddddddd-0000-0000-0000-000000000004", "0000:08:00.0"},
                          {"GPU-eeeeeeee-0000-0000-0000-000000000005", "0000:41:00.0"}});
  }
  Topology discover_tree() {
    DiscoveryOptions o;
    o.sysfs_root = dir.path().string();
    o.facts = facts;
    o.cuda_env = CudaEnvironment{};
    return discover(o);
  }
  TempDir dir;
  MachineFacts facts;
};

TEST_F(Classification, EveryPcieClass) {
  const Topology t = discover_tree();
  const std::vector<std::vector<std::string>> expected{
      {"GPU0", "X", "PHB", "PHB", "PHB", "NODE", "0-3", "0", "N/A"},
      {"GPU1", "PHB", "X", "PHB", "PHB", "NODE", "0-3", "0", "N/A"},
      {"GPU2", "PHB", "PHB", "X", "PXB", "NODE", "0-3", "0", "N/A"},
      {"GPU3", "PHB", "PHB", "PXB", "X", "NODE", "0-3", "0", "N/A"},
      {"GPU4", "NODE", "NODE", "NODE", "NODE", "X", "0-3", "0", "N/A"},
  };
  EXPECT_EQ(matrix_rows(t), expected);
  // The symlinks were followed: C sits below five bridges.
  EXPECT_EQ(t.gpus()[2].upstream.size(), 5u);
  EXPECT_EQ(t.gpus()[2].upstream.back().address.to_string(), "0000:00:03.0");
  EXPECT_EQ(t.gpus()[2].link.current_width, 8);
  EXPECT_EQ(t.gpus()[2].link.max_width, 16);
}

TEST_F(Classification, DirectNvLinksCountPerPair) {
  // A and B joined by 4 direct links; C and D by 2; NVLink wins over any PCIe path.
  for (int l = 0; l < 4; ++l) {
    facts.gpus[0].nvlinks.push_back({l, "0000:02:00.0", NvLinkPeerType::gpu});
    facts.gpus[1].nvlinks.push_back({l, "0000:01:00.0", NvLinkPeerType::gpu});
  }
  for (int l = 0; l < 2; ++l) {
    facts.gpus[2].nvlinks.push_back({l, "0000:08:00.0", NvLinkPeerType::gpu});
    facts.gpus[3].nvlinks.push_back({l, "0000:07:00.0", NvLinkPeerType::gpu});
  }
  const Topology t = discover_tree();
  EXPECT_EQ(t.link(0, 1).to_string(), "NV4");
  EXPECT_EQ(t.link(1, 0).to_string(), "NV4");
  EXPECT_EQ(t.link(2, 3).to_string(), "NV2");
  EXPECT_EQ(t.link(0, 2).to_string(), "PHB");
  EXPECT_THROW(t.link(0, 5), kiln::Error);
}

TEST_F(Classification, TwoNumaNodesMakeSys) {
  SysfsTree tree(dir.path());
  tree.write("/sys/devices/pci0000:40/0000:40:01.0/0000:41:00.0/numa_node", "1");
  tree.write("/sys/devices/pci0000:40/0000:40:01.0/0000:41:00.0/local_cpulist", "4-7");
  tree.numa_node(1, "4-7");
  const Topology t = discover_tree();
  EXPECT_EQ(t.link(0, 4).to_string(), "SYS");
  EXPECT_EQ(t.link(0, 1).to_string(), "PHB");
  EXPECT_EQ(t.gpus()[4].numa_affinity.to_string(), "1");
}

TEST_F(Classification, FindsGpusByEveryName) {
  const Topology t = discover_tree();
  EXPECT_EQ(t.find("GPU-cccccccc-0000-0000-0000-000000000003"), &t.gpus()[2]);
  EXPECT_EQ(t.find("GPU-cccc"), &t.gpus()[2]);
  EXPECT_EQ(t.find("00000000:07:00.0"), &t.gpus()[2]);
  EXPECT_EQ(t.find("0000:07:00.0"), &t.gpus()[2]);
  EXPECT_EQ(t.find("cuda:2"), &t.gpus()[2]);
  EXPECT_EQ(t.find("GPU-"), nullptr);         // too short to be a prefix
  EXPECT_EQ(t.find("0000:09:00.0"), nullptr);
  EXPECT_EQ(t.find("cuda:9"), nullptr);
  EXPECT_EQ(t.index_of(t.gpus()[3]), 3u);
}

}  // namespace
