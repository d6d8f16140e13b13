// The kiln CLI, run as a real child process.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "kiln/driver/cuda_api.hpp"
#include "support/nvrtc_compile.hpp"
#include "support/process.hpp"

namespace {

using kiln::testing::cli_path;
using kiln::testing::run_process;

bool driver_present() { return kiln::driver::driver_state().api != nullptr; }

TEST(CliDoctor, JsonDescribesThisMachine) {
  auto r = run_process({cli_path(), "doctor", "--json"});
  nlohmann::json j;
  ASSERT_NO_THROW(j = nlohmann::json::parse(r.out)) << r.out << r.err;
  for (const char* key : {"kiln", "system", "driver", "nvrtc", "nvml", "toolkit", "gpus", "problems", "healthy"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["kiln"]["built_cuda_version"], kiln::driver::format_cuda_version(CUDA_VERSION));
  EXPECT_TRUE(j["nvrtc"]["found"].get<bool>());
  EXPECT_EQ(j["nvrtc"]["version"].get<std::string>().substr(0, 3),
            std::to_string(kiln::testing::expected_nvrtc_major()) + ".");
  EXPECT_TRUE(j["toolkit"]["include"].get<bool>());
  EXPECT_TRUE(j["toolkit"]["cccl"].get<bool>());
  EXPECT_EQ(r.exit_code, j["healthy"].get<bool>() ? 0 : 1);
  EXPECT_EQ(j["healthy"].get<bool>(), j["problems"].empty());
  for (const auto& p : j["problems"]) {
    EXPECT_FALSE(p["id"].get<std::string>().empty());
    EXPECT_FALSE(p["message"].get<std::string>().empty());
    EXPECT_FALSE(p["hint"].get<std::string>().empty()) << p["id"];
  }
  if (!driver_present()) {
    EXPECT_FALSE(j["driver"]["found"].get<bool>());
    EXPECT_TRUE(j["driver"]["path"].is_null());
    EXPECT_NE(j["driver"]["error"].get<std::string>().find("libcuda.so.1"), std::string::npos);
    EXPECT_TRUE(j["gpus"].empty());
    EXPECT_EQ(r.exit_code, 1);
    bool no_driver = false;
    for (const auto& p : j["problems"]) no_driver |= p["id"] == "no_driver";
    EXPECT_TRUE(no_driver);
  }
}

TEST(CliDoctor, ReportsHowCudaNumbersGpus) {
  auto plain = nlohmann::json::parse(run_process({cli_path(), "doctor", "--json"}, {{}, {"CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"}}).out);
  EXPECT_EQ(plain["cuda_device_order"], "FASTEST_FIRST (default)");
  EXPECT_TRUE(plain["cuda_visible_devices"].is_null());
  auto set = run_process({cli_path(), "doctor"}, {{{"CUDA_VISIBLE_DEVICES", "GPU-1234"}, {"CUDA_DEVICE_ORDER", "PCI_BUS_ID"}}, {}});
  EXPECT_NE(set.out.find("CUDA_DEVICE_ORDER=PCI_BUS_ID"), std::string::npos) << set.out;
  EXPECT_NE(set.out.find("CUDA_VISIBLE_DEVICES=GPU-1234"), std::string::npos) << set.out;
}

TEST(CliDoctor, TextReportNamesTheSections) {
  auto r = run_process({cli_path(), "doctor"});
  for (const char* s : {"Driver", "NVRTC", "NVML", "Toolkit", "GPUs"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  if (!driver_present()) {
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.out.find("No NVIDIA driver"), std::string::npos) << r.out;
  }
}

TEST(CliDoctor, BogusNvrtcPathIsNamed) {
  auto r = run_process({cli_path(), "doctor", "--json"}, {{{"KILN_NVRTC_PATH", "/bogus/libnvrtc.so"}}, {}});
  EXPECT_EQ(r.exit_code, 1);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j["nvrtc"]["found"].get<bool>());
  EXPECT_NE(j["nvrtc"]["error"].get<std::string>().find("KILN_NVRTC_PATH=/bogus/libnvrtc.so"), std::string::npos)
      << j["nvrtc"].dump();
  bool reported = false;
  for (const auto& p : j["problems"])
    if (p["id"] == "no_nvrtc") reported = p["message"].get<std::string>().find("/bogus/libnvrtc.so") != std::string::npos;
  EXPECT_TRUE(reported) << j["problems"].dump();
}

TEST(CliDoctor, ReportsNvJitLinkAndItsAbsenceIsOnlyANote) {
  KILN_SKIP_UNLESS_NVRTC(12000, "an nvJitLink of NVRTC's own toolkit (nvJitLink came with CUDA 12.0)");
  auto found = run_process({cli_path(), "doctor", "--json"});
  auto j = nlohmann::json::parse(found.out);
  ASSERT_TRUE(j.contains("nvjitlink")) << found.out;
  EXPECT_TRUE(j["nvjitlink"]["found"].get<bool>()) << j["nvjitlink"].dump();
  EXPECT_NE(j["nvjitlink"]["path"].get<std::string>().find("libnvJitLink.so"), std::string::npos);
  EXPECT_EQ(j["nvjitlink"]["version"], j["nvrtc"]["version"]) << "one toolkit's NVRTC and nvJitLink";
  ASSERT_TRUE(j["notes"].is_array());
  EXPECT_TRUE(j["notes"].empty()) << j["notes"].dump();
  auto text = run_process({cli_path(), "doctor"});
  EXPECT_NE(text.out.find("nvJitLink"), std::string::npos) << text.out;

  auto missing = run_process({cli_path(), "doctor", "--json"}, {{{"KILN_NVJITLINK_PATH", "/bogus/libnvJitLink.so"}}, {}});
  auto m = nlohmann::json::parse(missing.out);
  EXPECT_FALSE(m["nvjitlink"]["found"].get<bool>());
  EXPECT_NE(m["nvjitlink"]["error"].get<std::string>().find("KILN_NVJITLINK_PATH=/bogus/libnvJitLink.so"),
            std::string::npos) << m["nvjitlink"].dump();
  bool noted = false;
  for (const auto& n : m["notes"]) noted |= n["id"] == "no_nvjitlink";
  EXPECT_TRUE(noted) << m["notes"].dump();
  EXPECT_EQ(m["problems"], j["problems"]) << "a missing nvJitLink must not make kiln unhealthy";
  EXPECT_EQ(missing.exit_code, found.exit_code);
}

TEST(CliExplain, NvJitLinkCodes) {
  auto r = run_process({cli_path(), "explain", "NVJITLINK_ERROR_PTX_COMPILE"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("nvjitlink error 4"), std::string::npos) << r.out;
  auto by_number = run_process({cli_path(), "explain", "nvjitlink:5"});
  EXPECT_NE(by_number.out.find("NVJITLINK_ERROR_NVVM_COMPILE"), std::string::npos) << by_number.out;
}

TEST(CliExplain, ByName) {
  auto r = run_process({cli_path(), "explain", "CUDA_ERROR_ILLEGAL_ADDRESS"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("CUDA_ERROR_ILLEGAL_ADDRESS (driver error 700)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("hint:"), std::string::npos);
  EXPECT_NE(r.out.find("sticky:  yes"), std::string::npos);
}

TEST(CliExplain, ByNumber) {
  auto r = run_process({cli_path(), "explain", "2"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("CUDA_ERROR_OUT_OF_MEMORY"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sticky:  no"), std::string::npos);
}

TEST(CliExplain, ByDomainAndNumber) {
  auto r = run_process({cli_path(), "explain", "nvrtc:6"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("NVRTC_ERROR_COMPILATION"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("CUDA_ERROR"), std::string::npos) << r.out;
}

TEST(CliExplain, UnknownCodeExitsOne) {
  auto r = run_process({cli_path(), "explain", "CUDA_ERROR_MADE_UP"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("CUDA_ERROR_MADE_UP"), std::string::npos) << r.err;
}

TEST(CliUsage, BadUsageExitsTwo) {
  EXPECT_EQ(run_process({cli_path(), "explain"}).exit_code, 2);
  EXPECT_EQ(run_process({cli_path(), "no-such-command"}).exit_code, 2);
  EXPECT_EQ(run_process({cli_path()}).exit_code, 2);
  EXPECT_EQ(run_process({cli_path(), "doctor", "--bogus"}).exit_code, 2);
}

TEST(CliUsage, HelpDocumentsExitCodes) {
  auto r = run_process({cli_path(), "doctor", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("Exit codes: 0 healthy; 1 problems found"), std::string::npos) << r.out;
}

}  // namespace
