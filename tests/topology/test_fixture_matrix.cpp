// The full nvidia-smi matrix of each shipped fixture, written out by hand from the machine's
// layout (not produced by the code under test), and the recorded nvidia-smi output of the H100 VM.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "kiln/topology/matrix.hpp"
#include "kiln/topology/topology.hpp"
#include "support/smi_matrix.hpp"

namespace {

using Rows = std::vector<std::vector<std::string>>;
using kiln::topology::discover_fixture;

std::string fixture(const std::string& name) { return std::string(KILN_TOPOLOGY_FIXTURES) + "/" + name; }

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

const std::string kNode0 = "0-55,112-167";
const std::string kNode1 = "56-111,168-223";

TEST(FixtureMatrix, H100VmMatchesTheRecordedNvidiaSmi) {
  const auto t = discover_fixture(fixture("h100-x1-vm"), kiln::topology::CudaEnvironment{});
  const Rows expected{{"GPU0", "X", "0-15", "0", "N/A"}};
  EXPECT_EQ(kiln::topology::matrix_rows(t), expected);
  // What nvidia-smi printed on that machine: numa_node is -1 there, yet NUMA affinity is 0.
  EXPECT_EQ(kiln::testing::parse_topo_matrix(read(fixture("h100-x1-vm/nvidia-smi-topo-m.txt"))), expected);
  ASSERT_EQ(t.gpus().size(), 1u);
  const auto& g = t.gpus()[0];
  EXPECT_EQ(g.uuid, "GPU-30885cc1-976c-340d-29af-f96e1bdbeb46");
  EXPECT_EQ(g.pci.to_string(), "0000:00:06.0");
  EXPECT_EQ(g.numa_node, -1);
  EXPECT_EQ(g.host_bridge, "pci0000:00");
  EXPECT_TRUE(g.upstream.empty());  // on the root bus of a VM
  EXPECT_EQ(g.link.current_gts, 32.0);
  EXPECT_EQ(g.link.current_width, 16);
  EXPECT_EQ(kiln::topology::PcieLinkStatus::generation(g.link.max_gts), 5);
  ASSERT_EQ(t.numa_nodes().size(), 1u);
  EXPECT_EQ(t.numa_nodes()[0].cpus.to_string(), "0-15");
}

// Recorded on the device tool's two-GPU VM: 18 NVLinks per GPU to NVSwitches the VM cannot see.
TEST(FixtureMatrix, TwoGpuVmWithHiddenNvSwitchesIsNV18) {
  const auto t = discover_fixture(fixture("h100-x2-vm"), kiln::topology::CudaEnvironment{});
  const Rows expected{{"GPU0", "X", "NV18", "0-31", "0", "N/A"}, {"GPU1", "NV18", "X", "0-31", "0", "N/A"}};
  EXPECT_EQ(kiln::topology::matrix_rows(t), expected);
  EXPECT_EQ(kiln::testing::parse_topo_matrix(read(fixture("h100-x2-vm/nvidia-smi-topo-m.txt"))), expected);
  ASSERT_EQ(t.gpus().size(), 2u);
  EXPECT_EQ(t.gpus()[0].nvlinks.size(), 18u);
  for (const auto& l : t.gpus()[0].nvlinks) {
    EXPECT_EQ(l.remote_type, kiln::topology::NvLinkPeerType::switch_);
    EXPECT_TRUE(l.remote_pci_bus_id.empty());
  }
}

TEST(FixtureMatrix, PcieServerWithSwitches) {
  const auto t = discover_fixture(fixture("pcie-8gpu-2socket"), kiln::topology::CudaEnvironment{});
  const Rows expected{
      {"GPU0", "X", "PIX", "NODE", "NODE", "SYS", "SYS", "SYS", "SYS", kNode0, "0", "N/A"},
      {"GPU1", "PIX", "X", "NODE", "NODE", "SYS", "SYS", "SYS", "SYS", kNode0, "0", "N/A"},
      {"GPU2", "NODE", "NODE", "X", "PIX", "SYS", "SYS", "SYS", "SYS", kNode0, "0", "N/A"},
      {"GPU3", "NODE", "NODE", "PIX", "X", "SYS", "SYS", "SYS", "SYS", kNode0, "0", "N/A"},
      {"GPU4", "SYS", "SYS", "SYS", "SYS", "X", "PIX", "NODE", "NODE", kNode1, "1", "N/A"},
      {"GPU5", "SYS", "SYS", "SYS", "SYS", "PIX", "X", "NODE", "NODE", kNode1, "1", "N/A"},
      {"GPU6", "SYS", "SYS", "SYS", "SYS", "NODE", "NODE", "X", "PIX", kNode1, "1", "N/A"},
      {"GPU7", "SYS", "SYS", "SYS", "SYS", "NODE", "NODE", "PIX", "X", kNode1, "1", "N/A"},
  };
  EXPECT_EQ(kiln::topology::matrix_rows(t), expected);
  // The text kiln prints reads back as the same matrix.
  EXPECT_EQ(kiln::testing::parse_topo_matrix(kiln::topology::format_matrix(t)), expected);
  const auto& g3 = t.gpus()[3];
  EXPECT_EQ(g3.pci.to_string(), "0000:3b:00.0");
  ASSERT_EQ(g3.upstream.size(), 3u);
  EXPECT_EQ(g3.upstream[0].address.to_string(), "0000:39:01.0");
  EXPECT_EQ(g3.upstream[0].role, kiln::topology::BridgeRole::switch_downstream);
  EXPECT_EQ(g3.upstream[1].address.to_string(), "0000:38:00.0");
  EXPECT_EQ(g3.upstream[1].role, kiln::topology::BridgeRole::switch_upstream);
  EXPECT_EQ(g3.upstream[2].address.to_string(), "0000:37:01.0");
  EXPECT_EQ(g3.upstream[2].role, kiln::topology::BridgeRole::root_port);
  EXPECT_EQ(g3.host_bridge, "pci0000:37");
  ASSERT_EQ(t.numa_nodes().size(), 2u);
  EXPECT_EQ(t.numa_nodes()[1].distances, (std::vector<int>{21, 10}));
}

TEST(FixtureMatrix, DgxNvSwitchIsNv18Everywhere) {
  const auto t = discover_fixture(fixture("dgx-h100-8gpu"), kiln::topology::CudaEnvironment{});
  Rows expected;
  for (int a = 0; a < 8; ++a) {
    std::vector<std::string> row{"GPU" + std::to_string(a)};
    for (int b = 0; b < 8; ++b) row.push_back(a == b ? "X" : "NV18");
    row.insert(row.end(), {a < 4 ? kNode0 : kNode1, a < 4 ? "0" : "1", "N/A"});
    expected.push_back(row);
  }
  EXPECT_EQ(kiln::topology::matrix_rows(t), expected);
  const std::vector<std::string> buses{"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0",
                                       "0000:9a:00.0", "0000:ab:00.0", "0000:ba:00.0", "0000:db:00.0"};
  for (std::size_t i = 0; i < buses.size(); ++i) EXPECT_EQ(t.gpus()[i].pci.to_string(), buses[i]);
}

TEST(FixtureMatrix, TextShowsIdentitiesAndLegend) {
  const auto t = discover_fixture(fixture("pcie-8gpu-2socket"), kiln::topology::CudaEnvironment{});
  const std::string text = kiln::topology::format_matrix(t);
  for (const char* s : {"CPU Affinity", "NUMA Affinity", "Legend:", "NV#  = Connection traversing",
                        "GPU-8c0e0007-5e1f-4b2a-9d3c-0a1b2c3d4e07", "0000:bd:00.0", "Gen5 x16", "NVIDIA H100 PCIe"})
    EXPECT_NE(text.find(s), std::string::npos) << s << "\n" << text;
}

}  // namespace
