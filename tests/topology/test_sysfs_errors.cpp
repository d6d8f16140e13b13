// Bad or incomplete sysfs trees: each gives an error that names the root, the GPU and the file.
#include <gtest/gtest.h>

#include "kiln/driver/error.hpp"

#include <filesystem>

#include "kiln/topology/topology.hpp"
#include "support/sysfs_tree.hpp"

namespace {

using kiln::testing::simple_facts;
using kiln::testing::SysfsTree;
using kiln::testing::TempDir;
using namespace kiln::topology;

const std::string kGpuDir = "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0";
const char* kUuid = "GPU-12345678-0000-0000-0000-000000000001";

class SysfsErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    tree.bridge("/sys/devices/pci0000:00/0000:00:01.0");
    tree.gpu(kGpuDir);
    tree.link(kGpuDir);
    tree.numa_node(0, "0-3");
  }
  // The message discovery fails with; empty when it succeeds.
  std::string error(const std::string& root = {}) {
    DiscoveryOptions o;
    o.sysfs_root = root.empty() ? dir.path().string() : root;
    o.facts = simple_facts({{kUuid, "0000:01:00.0"}});
    o.cuda_env = CudaEnvironment{};
    try {
      discover(o);
    } catch (const kiln::Error& e) {
      EXPECT_TRUE(e.is(kiln::Errc::invalid_argument)) << e.what();
      return e.what();
    }
    return {};
  }
  void remove(const std::string& live) { std::filesystem::remove_all(dir.path() / std::filesystem::path(live).relative_path()); }
  TempDir dir;
  SysfsTree tree{dir.path()};
};

#define EXPECT_CONTAINS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

TEST_F(SysfsErrors, TheCompleteTreeWorks) { EXPECT_EQ(error(), ""); }

TEST_F(SysfsErrors, NotASysfsTree) {
  TempDir empty;
  const std::string e = error(empty.path().string());
  EXPECT_CONTAINS(e, empty.path().string());
  EXPECT_CONTAINS(e, "not a sysfs tree");
}

TEST_F(SysfsErrors, GpuMissingFromTheTree) {
  remove("/sys/bus/pci/devices/0000:01:00.0");
  const std::string e = error();
  EXPECT_CONTAINS(e, "/sys/bus/pci/devices/0000:01:00.0");
  EXPECT_CONTAINS(e, kUuid);
  EXPECT_CONTAINS(e, dir.path().string());
}

TEST_F(SysfsErrors, LinkToANonexistentDevice) {
  remove(kGpuDir);
  const std::string e = error();
  EXPECT_CONTAINS(e, kGpuDir + " does not exist");
}

TEST_F(SysfsErrors, LinkOutsideTheDeviceTree) {
  remove("/sys/bus/pci/devices/0000:01:00.0");
  tree.write("/sys/bus/pci/devices/0000:01:00.0.link", "/sys/platform/0000:01:00.0");
  EXPECT_CONTAINS(error(), "not under /sys/devices");
}

TEST_F(SysfsErrors, LinkToAnotherDevice) {
  remove("/sys/bus/pci/devices/0000:01:00.0");
  tree.write("/sys/bus/pci/devices/0000:01:00.0.link", "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.1");
  EXPECT_CONTAINS(error(), "another device");
}

TEST_F(SysfsErrors, NotBelowAHostBridge) {
  remove("/sys/bus/pci/devices/0000:01:00.0");
  tree.write("/sys/bus/pci/devices/0000:01:00.0.link", "/sys/devices/virtual/0000:01:00.0");
  EXPECT_CONTAINS(error(), "not below a PCI host bridge");
}

TEST_F(SysfsErrors, MissingVendor) {
  remove(kGpuDir + "/vendor");
  const std::string e = error();
  EXPECT_CONTAINS(e, kGpuDir + "/vendor");
  EXPECT_CONTAINS(e, kUuid);
}

TEST_F(SysfsErrors, NotAnNvidiaDevice) {
  tree.write(kGpuDir + "/vendor", "0x8086");
  EXPECT_CONTAINS(error(), "is 0x8086, not NVIDIA's 0x10de");
}

TEST_F(SysfsErrors, MissingLocalCpus) {
  remove(kGpuDir + "/local_cpulist");
  const std::string e = error();
  EXPECT_CONTAINS(e, "local_cpulist nor local_cpus");
  // The mask alone is enough.
  tree.write(kGpuDir + "/local_cpus", "f");
  EXPECT_EQ(error(), "");
}

TEST_F(SysfsErrors, GarbledLocalCpus) {
  tree.write(kGpuDir + "/local_cpulist", "0-x");
  const std::string e = error();
  EXPECT_CONTAINS(e, kGpuDir + "/local_cpulist");
  EXPECT_CONTAINS(e, "\"0-x\"");
}

TEST_F(SysfsErrors, BridgeWithoutClass) {
  remove("/sys/devices/pci0000:00/0000:00:01.0/class");
  EXPECT_CONTAINS(error(), "/sys/devices/pci0000:00/0000:00:01.0/class");
}

TEST_F(SysfsErrors, ParentThatIsNotABridge) {
  tree.write("/sys/devices/pci0000:00/0000:00:01.0/class", "0x020000");
  EXPECT_CONTAINS(error(), "not a PCI bridge");
}

TEST_F(SysfsErrors, NumaNodeWithoutCpus) {
  remove("/sys/devices/system/node/node0/cpulist");
  tree.write("/sys/devices/system/node/node0/distance", "10");
  EXPECT_CONTAINS(error(), "/sys/devices/system/node/node0/cpulist");
}

TEST_F(SysfsErrors, MissingOptionalFilesAreTolerated) {
  // numa_node and link speeds are absent on some kernels and hypervisors.
  for (const char* f : {"/numa_node", "/current_link_speed", "/current_link_width", "/max_link_speed", "/max_link_width"})
    remove(kGpuDir + f);
  DiscoveryOptions o;
  o.sysfs_root = dir.path().string();
  o.facts = simple_facts({{kUuid, "0000:01:00.0"}});
  o.cuda_env = CudaEnvironment{};
  const Topology t = discover(o);
  EXPECT_EQ(t.gpus()[0].numa_node, -1);
  EXPECT_EQ(t.gpus()[0].numa_affinity.to_string(), "0");  // from its CPUs
  EXPECT_EQ(t.gpus()[0].link.current_gts, 0);
}

TEST(SysfsRoot, ComesFromTheEnvironment) {
  ::setenv("KILN_SYSFS_ROOT", "/some/where", 1);
  EXPECT_EQ(default_sysfs_root(), "/some/where");
  ::setenv("KILN_SYSFS_ROOT", "", 1);
  EXPECT_EQ(default_sysfs_root(), "/");
  ::unsetenv("KILN_SYSFS_ROOT");
  EXPECT_EQ(default_sysfs_root(), "/");
}

}  // namespace
