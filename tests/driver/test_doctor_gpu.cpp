// On the GPU machine: kiln doctor agrees with nvidia-smi about the GPUs and the driver.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/driver/nvml_api.hpp"
#include "support/gpu.hpp"
#include "support/nvidia_smi.hpp"
#include "support/process.hpp"

namespace {

using kiln::testing::run_process;

TEST(DoctorGpu, ListsEveryGpuAsNvidiaSmiDoes) {
  KILN_REQUIRE_GPU();
  auto r = run_process({kiln::testing::cli_path(), "doctor", "--json"});
  auto j = nlohmann::json::parse(r.out);
  auto smi = kiln::testing::query_nvidia_smi("uuid,pci.bus_id,compute_cap,memory.total,name,index");
  ASSERT_EQ(j["gpus"].size(), smi.size()) << r.out;
  // CUDA ordinals may follow another order than nvidia-smi's: match by UUID.
  for (const auto& row : smi) {
    const nlohmann::json* gpu = nullptr;
    for (const auto& g : j["gpus"])
      if (g["uuid"] == row[0]) gpu = &g;
    ASSERT_NE(gpu, nullptr) << "kiln doctor lacks " << row[0] << "\n" << r.out;
    EXPECT_EQ((*gpu)["compute_capability"], row[2]);
    // nvidia-smi's bus id has 8 domain digits, CUDA's 4.
    std::string bus = row[1];
    EXPECT_NE(bus.find((*gpu)["pci_bus_id"].get<std::string>().substr(5)), std::string::npos) << bus;
    const double smi_mib = std::stod(row[3]);
    const double kiln_mib = (*gpu)["memory_total"].get<double>() / (1024 * 1024);
    EXPECT_NEAR(kiln_mib, smi_mib, smi_mib * 0.01);
    EXPECT_GT((*gpu)["memory_free"].get<double>(), 0);
    EXPECT_LE((*gpu)["memory_free"].get<double>(), (*gpu)["memory_total"].get<double>());
    EXPECT_EQ((*gpu)["name"], row[4]);
    EXPECT_EQ((*gpu)["nvml_index"], std::stoi(row[5])) << "CUDA ordinal vs nvidia-smi index mapping";
    EXPECT_TRUE((*gpu)["nvrtc_can_compile"].get<bool>());
  }
}

TEST(DoctorGpu, DriverVersionMatchesNvidiaSmi) {
  KILN_REQUIRE_GPU();
  auto smi = kiln::testing::query_nvidia_smi("driver_version");
  ASSERT_FALSE(smi.empty());
  auto r = run_process({kiln::testing::cli_path(), "doctor", "--json"});
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["driver"]["version"], smi[0][0]) << j["driver"].dump();
  EXPECT_TRUE(j["driver"]["found"].get<bool>());
  EXPECT_EQ(j["driver"]["init"], "CUDA_SUCCESS");
  int v = 0;
  kiln::driver::cuda().cuDriverGetVersion(&v);
  EXPECT_EQ(j["driver"]["cuda_version"], kiln::driver::format_cuda_version(v));
}

TEST(DoctorGpu, EveryEntryPointResolvedOnACurrentDriver) {
  KILN_REQUIRE_GPU();
  const auto& s = kiln::driver::driver_state();
  if (s.cuda_version < kiln::driver::built_cuda_version())
    GTEST_SKIP() << "driver older than the toolkit kiln was built with";
  std::string missing;
  for (const auto& m : s.missing) missing += m.name + " ";
  EXPECT_TRUE(s.missing.empty()) << missing;
}

TEST(DoctorGpu, DriverCallsWorkThroughTheTable) {
  KILN_REQUIRE_GPU();
  const auto& cu = kiln::driver::cuda();
  CUdevice dev{};
  ASSERT_EQ(cu.cuDeviceGet(&dev, 0), CUDA_SUCCESS);
  CUcontext ctx{};
  ASSERT_EQ(cu.cuDevicePrimaryCtxRetain(&ctx, dev), CUDA_SUCCESS);
  ASSERT_EQ(cu.cuCtxSetCurrent(ctx), CUDA_SUCCESS);
  CUdeviceptr p{};
  ASSERT_EQ(cu.cuMemAlloc(&p, 1 << 20), CUDA_SUCCESS);
  EXPECT_EQ(cu.cuMemsetD32(p, 0xdeadbeef, 1 << 18), CUDA_SUCCESS);
  unsigned host = 0;
  EXPECT_EQ(cu.cuMemcpyDtoH(&host, p + 4096, 4), CUDA_SUCCESS);
  EXPECT_EQ(host, 0xdeadbeefu);
  EXPECT_EQ(cu.cuMemFree(p), CUDA_SUCCESS);
  // A real driver error maps to kiln::Error with its name.
  try {
    CUdevice none{};
    kiln::driver::check(cu.cuDeviceGet(&none, 9999), "cuDeviceGet");
    ADD_FAILURE() << "device 9999 was accepted";
  } catch (const kiln::Error& e) {
    EXPECT_EQ(e.domain(), kiln::Domain::driver);
    EXPECT_EQ(e.name(), "CUDA_ERROR_INVALID_DEVICE");
    EXPECT_FALSE(e.sticky());
  }
  cu.cuCtxSetCurrent(nullptr);
  cu.cuDevicePrimaryCtxRelease(dev);
}

TEST(DoctorGpu, NvmlAgreesWithTheDriver) {
  KILN_REQUIRE_GPU();
  const auto& nvml = kiln::driver::nvml_state();
  if (!nvml.api) GTEST_SKIP() << "NVML is optional and absent here: " << nvml.library.failure;
  int cuda_from_nvml = 0;
  ASSERT_EQ(nvml.api->nvmlSystemGetCudaDriverVersion_v2(&cuda_from_nvml), 0);
  EXPECT_EQ(cuda_from_nvml, kiln::driver::driver_state().cuda_version);
}

}  // namespace
