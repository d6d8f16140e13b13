// `kiln topo` run as a real program: on this machine (no GPU here: exit 3 and why), on fixtures
// as text, JSON and SVG, recording a fixture, placement, and bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kiln/driver/cuda_api.hpp"
#include "support/process.hpp"
#include "support/smi_matrix.hpp"
#include "support/sysfs_tree.hpp"
#include "support/xml_check.hpp"

namespace {

using kiln::testing::cli_path;
using kiln::testing::run_process;

std::string fixture(const std::string& name) { return std::string(KILN_TOPOLOGY_FIXTURES) + "/" + name; }

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The CLI sees whatever CUDA environment the test runs in; fixtures are checked without one.
const kiln::testing::ProcessOptions kCleanEnv{{}, {"CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "KILN_SYSFS_ROOT"}};

TEST(TopoCli, WithoutAGpuSaysSoWithExitCode3) {
  const auto& state = kiln::driver::driver_state();
  int count = 0;
  const bool gpu = state.api && state.init_result == CUDA_SUCCESS && state.api->cuDeviceGetCount(&count) == CUDA_SUCCESS && count > 0;
  const auto r = run_process({cli_path(), "topo"}, kCleanEnv);
  if (gpu) {
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("GPU0"), std::string::npos);
    return;
  }
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("no GPU to show"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--fixture"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  if (!state.api) {
    EXPECT_NE(r.err.find("libcuda.so.1"), std::string::npos) << r.err;
  }
}

TEST(TopoCli, FixtureMatrixAsText) {
  const auto r = run_process({cli_path(), "topo", "--fixture", fixture("pcie-8gpu-2socket")}, kCleanEnv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rows = kiln::testing::parse_topo_matrix(r.out);
  ASSERT_EQ(rows.size(), 8u) << r.out;
  EXPECT_EQ(rows[0], (std::vector<std::string>{"GPU0", "X", "PIX", "NODE", "NODE", "SYS", "SYS", "SYS", "SYS",
                                               "0-55,112-167", "0", "N/A"}));
  EXPECT_NE(r.out.find("Identities"), std::string::npos);
}

TEST(TopoCli, JsonWithTheCudaMapping) {
  auto env = kCleanEnv;
  env.set_env = {{"CUDA_VISIBLE_DEVICES", "3,1"}};
  env.unset_env = {"CUDA_DEVICE_ORDER", "KILN_SYSFS_ROOT"};
  const auto r = run_process({cli_path(), "topo", "--json", "--fixture", fixture("dgx-h100-8gpu")}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["gpus"].size(), 8u);
  EXPECT_EQ(j["gpus"][3]["pci_bus_id"], "0000:5d:00.0");
  EXPECT_EQ(j["gpus"][3]["cuda_ordinal"], 0);
  EXPECT_EQ(j["gpus"][1]["cuda_ordinal"], 1);
  EXPECT_TRUE(j["gpus"][0]["cuda_ordinal"].is_null());
  EXPECT_EQ(j["gpus"][3]["numa_node"], 0);
  EXPECT_EQ(j["gpus"][3]["cpu_affinity"], "0-55,112-167");
  EXPECT_EQ(j["gpus"][3]["pcie"]["current_generation"], 5);
  EXPECT_EQ(j["gpus"][3]["pcie_path"].size(), 3u);
  EXPECT_EQ(j["gpus"][3]["pcie_path"][2]["role"], "root_port");
  EXPECT_EQ(j["gpus"][3]["nvlinks"].size(), 18u);
  ASSERT_EQ(j["cuda_devices"].size(), 2u);
  EXPECT_EQ(j["cuda_devices"][0]["gpu_uuid"], j["gpus"][3]["uuid"]);
  EXPECT_EQ(j["matrix"]["rows"][0][1], "X");
  EXPECT_EQ(j["matrix"]["rows"][0][2], "NV18");
  EXPECT_EQ(j["matrix"]["header"][9], "CPU Affinity");
  EXPECT_EQ(j["numa_nodes"].size(), 2u);
  EXPECT_EQ(j["p2p"].size(), 56u);
}

TEST(TopoCli, SvgFileIsWellFormed) {
  kiln::testing::TempDir dir;
  const auto svg = dir.path() / "machine.svg";
  const auto r = run_process({cli_path(), "topo", "--fixture", fixture("dgx-h100-8gpu"), "--svg", svg.string()}, kCleanEnv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string text = read(svg);
  EXPECT_EQ(kiln::testing::xml_problem(text), "");
  EXPECT_NE(text.find("NVSwitch"), std::string::npos);
}

TEST(TopoCli, RecordMakesAFixtureThatReadsBackTheSame) {
  kiln::testing::TempDir dir;
  const auto out = dir.path() / "copy";
  auto r = run_process({cli_path(), "topo", "--fixture", fixture("pcie-8gpu-2socket"), "--record", out.string()},
                       kCleanEnv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("recorded 8 GPUs"), std::string::npos) << r.err;
  EXPECT_TRUE(std::filesystem::exists(out / "facts.json"));
  EXPECT_TRUE(std::filesystem::exists(out / "sysfs/sys/bus/pci/devices/0000:bd:00.0.link"));
  const auto again = run_process({cli_path(), "topo", "--fixture", out.string()}, kCleanEnv);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, r.out);
}

TEST(TopoCli, SysfsRootFromTheEnvironmentWithAFactsFile) {
  auto env = kCleanEnv;
  env.set_env = {{"KILN_SYSFS_ROOT", fixture("h100-x1-vm/sysfs")}};
  env.unset_env = {"CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"};
  const auto r = run_process({cli_path(), "topo", "--facts", fixture("h100-x1-vm/facts.json")}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(kiln::testing::parse_topo_matrix(r.out),
            (std::vector<std::vector<std::string>>{{"GPU0", "X", "0-15", "0", "N/A"}}));
}

TEST(TopoCli, ChoosePrintsGpusAndWhy) {
  const auto r = run_process({cli_path(), "topo", "--fixture", fixture("pcie-8gpu-2socket"), "--choose", "2"}, kCleanEnv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("GPU-8c0e0006-5e1f-4b2a-9d3c-0a1b2c3d4e06  0000:bc:00.0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("why: 2 GPUs under one PCIe switch"), std::string::npos) << r.out;
  const auto too_many = run_process(
      {cli_path(), "topo", "--fixture", fixture("pcie-8gpu-2socket"), "--choose", "4", "--min-free-gib", "79"}, kCleanEnv);
  EXPECT_EQ(too_many.exit_code, 0) << too_many.err;
  const auto none = run_process(
      {cli_path(), "topo", "--fixture", fixture("pcie-8gpu-2socket"), "--choose", "2", "--min-free-gib", "100"}, kCleanEnv);
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("only 0 of 8 qualify"), std::string::npos) << none.err;
}

TEST(TopoCli, BadInputIsNamed) {
  auto r = run_process({cli_path(), "topo", "--fixture", "/nonexistent/fixture"}, kCleanEnv);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  kiln::testing::TempDir dir;
  std::ofstream(dir.path() / "facts.json") << "{\"format\": \"kiln-topology-facts/1\", \"gpus\": [{}]}";
  r = run_process({cli_path(), "topo", "--fixture", dir.path().string()}, kCleanEnv);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("gpus[0].uuid: missing"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find((dir.path() / "facts.json").string()), std::string::npos) << r.err;
  // Facts that name a GPU the sysfs tree lacks.
  r = run_process({cli_path(), "topo", "--sysfs-root", fixture("h100-x1-vm/sysfs"), "--facts",
                   fixture("dgx-h100-8gpu/facts.json")},
                  kCleanEnv);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/sys/bus/pci/devices/0000:18:00.0"), std::string::npos) << r.err;
  r = run_process({cli_path(), "topo", "--choose", "0", "--fixture", fixture("h100-x1-vm")}, kCleanEnv);
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
