// Binding a thread to a GPU's CPUs, and the NUMA node for its pinned host memory.
#include <gtest/gtest.h>

#include "kiln/driver/error.hpp"

#include <thread>

#include "kiln/topology/affinity.hpp"
#include "kiln/topology/topology.hpp"

namespace {

using namespace kiln::topology;

TEST(Affinity, BindsAThreadToTheGpusCpus) {
  const Topology vm = discover_fixture(std::string(KILN_TOPOLOGY_FIXTURES) + "/h100-x1-vm", CudaEnvironment{});
  const CpuList before = current_thread_cpus();
  ASSERT_FALSE(before.empty());
  // In a thread of its own, so the test process keeps its affinity.
  std::thread([&] {
    Gpu gpu = vm.gpus()[0];
    gpu.cpus = CpuList({before.ids().front()});  // the first CPU this process may use
    const CpuList bound = bind_current_thread(gpu);
    EXPECT_EQ(bound, gpu.cpus);
    EXPECT_EQ(current_thread_cpus(), gpu.cpus);
  }).join();
  EXPECT_EQ(current_thread_cpus(), before);
  std::thread([&] {
    const CpuList bound = bind_current_thread(vm.gpus()[0]);  // CPUs 0-15, cut to what is allowed
    EXPECT_EQ(bound, vm.gpus()[0].cpus.intersection(before));
    EXPECT_EQ(current_thread_cpus(), bound);
  }).join();
}

TEST(Affinity, NoSharedCpuIsAnError) {
  const Topology vm = discover_fixture(std::string(KILN_TOPOLOGY_FIXTURES) + "/h100-x1-vm", CudaEnvironment{});
  Gpu gpu = vm.gpus()[0];
  gpu.cpus = CpuList({100000});
  try {
    bind_current_thread(gpu);
    FAIL();
  } catch (const kiln::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("GPU-30885cc1-976c-340d-29af-f96e1bdbeb46"), std::string::npos) << m;
    EXPECT_NE(m.find("100000"), std::string::npos) << m;
    EXPECT_NE(m.find("share none"), std::string::npos) << m;
  }
}

TEST(Affinity, HostNumaNode) {
  const Topology vm = discover_fixture(std::string(KILN_TOPOLOGY_FIXTURES) + "/h100-x1-vm", CudaEnvironment{});
  EXPECT_EQ(host_numa_node(vm.gpus()[0]), 0);  // numa_node -1, but its CPUs are node 0's
  const Topology pcie = discover_fixture(std::string(KILN_TOPOLOGY_FIXTURES) + "/pcie-8gpu-2socket", CudaEnvironment{});
  EXPECT_EQ(host_numa_node(pcie.gpus()[1]), 0);
  EXPECT_EQ(host_numa_node(pcie.gpus()[5]), 1);
  Gpu unknown;
  EXPECT_EQ(host_numa_node(unknown), -1);
  unknown.numa_affinity = CpuList({0, 1});
  EXPECT_EQ(host_numa_node(unknown), -1);  // local to two nodes: no single answer
}

}  // namespace
