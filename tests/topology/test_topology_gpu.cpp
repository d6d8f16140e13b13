// On a GPU machine: kiln's topology agrees with nvidia-smi (the matrix of `nvidia-smi topo -m`,
// bus ids, NUMA nodes), and a recorded fixture reads back the same.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "kiln/topology/facts.hpp"
#include "kiln/topology/matrix.hpp"
#include "kiln/topology/topology.hpp"
#include "support/gpu.hpp"
#include "support/nvidia_smi.hpp"
#include "support/process.hpp"
#include "support/smi_matrix.hpp"

namespace {

using kiln::testing::run_process;
using namespace kiln::topology;

TEST(TopologyGpu, MatrixEqualsNvidiaSmi) {
  KILN_REQUIRE_GPU();
  const Topology t = discover();
  const auto smi = run_process({"nvidia-smi", "topo", "-m"});
  ASSERT_EQ(smi.exit_code, 0) << smi.err;
  EXPECT_EQ(matrix_rows(t), kiln::testing::parse_topo_matrix(smi.out)) << smi.out << "\n" << format_matrix(t);
}

TEST(TopologyGpu, BusIdsAndNumaNodesAgree) {
  KILN_REQUIRE_GPU();
  const Topology t = discover();
  const auto rows = kiln::testing::query_nvidia_smi("index,uuid,pci.bus_id");
  ASSERT_EQ(rows.size(), t.gpus().size());
  for (const auto& row : rows) {
    const Gpu* g = t.find(row[1]);
    ASSERT_NE(g, nullptr) << row[1];
    EXPECT_EQ(g->pci.to_nvml_string(), row[2]);
    EXPECT_EQ(g->nvml_index, std::stoi(row[0]));
    // The NUMA node nvidia-smi's kernel driver sees: the same sysfs file, read directly.
    std::ifstream numa("/sys/bus/pci/devices/" + g->pci.to_string() + "/numa_node");
    int node = -2;
    numa >> node;
    EXPECT_EQ(g->numa_node, node);
  }
  for (const auto& d : t.cuda_devices().devices) EXPECT_NE(t.find(d.gpu_uuid), nullptr);
}

TEST(TopologyGpu, RecordedFixtureReadsBackTheSame) {
  KILN_REQUIRE_GPU();
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "kiln-topo-record";
  std::filesystem::remove_all(dir);
  const auto r = run_process({kiln::testing::cli_path(), "topo", "--record", dir.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Topology live = discover();
  const Topology recorded = discover_fixture(dir.string());
  EXPECT_EQ(matrix_rows(recorded), matrix_rows(live));
  for (std::size_t i = 0; i < live.gpus().size(); ++i) {
    EXPECT_EQ(recorded.gpus()[i].uuid, live.gpus()[i].uuid);
    EXPECT_EQ(recorded.gpus()[i].cuda_ordinal, live.gpus()[i].cuda_ordinal);
    EXPECT_EQ(recorded.gpus()[i].upstream.size(), live.gpus()[i].upstream.size());
  }
  // Every ordered pair of CUDA devices has its P2P attributes.
  const std::size_t n = live.cuda_devices().devices.size();
  EXPECT_EQ(live.facts().p2p.size(), n * (n - 1));
  std::filesystem::remove_all(dir);
}

}  // namespace
