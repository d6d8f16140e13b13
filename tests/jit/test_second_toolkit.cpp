// kiln built against CUDA 13.0 and run with another toolkit's NVRTC (Debian's CUDA 11.8,
// libnvrtc11.2 from bookworm's non-free component, which scripts/setup installs): the real CLI in
// child processes, the NVRTC chosen with KILN_NVRTC_PATH. Skips, saying why, where that NVRTC is
// not installed.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "kiln/driver/cuda_api.hpp"
#include "support/files.hpp"
#include "support/process.hpp"

namespace {

namespace fs = std::filesystem;
using kiln::testing::cli_path;
using kiln::testing::ProcessResult;
using kiln::testing::run_process;

// Where Debian's libnvrtc11.2 puts it; KILN_TEST_NVRTC11_PATH overrides.
std::string nvrtc11_path() {
  if (const char* p = std::getenv("KILN_TEST_NVRTC11_PATH")) return p;
  for (const char* p : {"/usr/lib/x86_64-linux-gnu/libnvrtc.so.11.2", "/usr/lib/aarch64-linux-gnu/libnvrtc.so.11.2"})
    if (fs::exists(p)) return p;
  return {};
}

class SecondToolkit : public ::testing::Test {
 protected:
  void SetUp() override {
    nvrtc11_ = nvrtc11_path();
    if (nvrtc11_.empty())
      GTEST_SKIP() << "NVRTC 11.8 is not installed (Debian's libnvrtc11.2, non-free; scripts/setup installs it)";
    dir_ = kiln::testing::fresh_test_folder("kiln-second-toolkit");
    kiln::testing::write_all(dir_ / "k.cu", "extern \"C\" __global__ void k(float* p) { p[threadIdx.x] *= 2.f; }\n");
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  // `kiln args...` on one cache folder, with NVRTC 11.8 or the toolkit kiln was built with.
  ProcessResult kiln(std::vector<std::string> args, bool with_nvrtc11) {
    args.insert(args.begin(), cli_path());
    kiln::testing::ProcessOptions o;
    o.set_env = {{"KILN_CACHE_DIR", (dir_ / "cache").string()}};
    if (with_nvrtc11) o.set_env.emplace_back("KILN_NVRTC_PATH", nvrtc11_);
    else o.unset_env = {"KILN_NVRTC_PATH"};
    return run_process(args, o);
  }
  ProcessResult compile(const std::string& arch, bool with_nvrtc11) {
    return kiln({"compile", (dir_ / "k.cu").string(), "--arch", arch, "-o", (dir_ / "out").string()}, with_nvrtc11);
  }
  std::string nvrtc11_;
  fs::path dir_;
};

TEST_F(SecondToolkit, DoctorNamesTheNvrtcAndEveryMismatch) {
  KILN_SKIP_UNDER_EMULATOR("the test uses the x86_64 NVRTC 11.8 (/usr/lib/x86_64-linux-gnu), which an aarch64 process cannot load");
  ProcessResult r = kiln({"doctor", "--json"}, true);
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["nvrtc"]["version"], "11.8") << r.out;
  bool older = false, headers = false;
  for (const auto& note : j["notes"]) {
    older = older || note["id"] == "nvrtc_older_than_build";
    headers = headers || note["id"] == "toolkit_headers_differ";
  }
  // Only a kiln built with a newer toolkit than 11.8 finds NVRTC 11.8 older than its build.
  EXPECT_EQ(older, kiln::driver::built_cuda_version() > 11080) << r.out;
  EXPECT_TRUE(headers) << "kiln's toolkit headers are 13.0: " << r.out;
  ProcessResult text = kiln({"doctor"}, true);
  EXPECT_EQ(text.out.find("cannot target sm_100") != std::string::npos, kiln::driver::built_cuda_version() > 11080)
      << text.out;
}

TEST_F(SecondToolkit, CompilesWhatItCanAndRefusesWhatItCannotWithTheReason) {
  KILN_SKIP_UNDER_EMULATOR("the test uses the x86_64 NVRTC 11.8 (/usr/lib/x86_64-linux-gnu), which an aarch64 process cannot load");
  ProcessResult ok = compile("sm_90", true);
  ASSERT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("sm_90 cubin"), std::string::npos) << ok.out;
  ProcessResult refused = compile("sm_100", true);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("NVRTC 11.8 cannot target sm_100 (it targets sm_35 to sm_90)"), std::string::npos)
      << refused.out << refused.err;
  EXPECT_EQ(refused.err.find("invalid value for --gpu-architecture"), std::string::npos)
      << "kiln says why before NVRTC does: " << refused.err;
  ProcessResult ptx = kiln({"compile", (dir_ / "k.cu").string(), "--arch", "compute_90", "--ptx", "-o", (dir_ / "k.ptx").string()}, true);
  ASSERT_EQ(ptx.exit_code, 0) << ptx.err;
  EXPECT_NE(kiln::testing::read_all(dir_ / "k.ptx").find(".version 7.8"), std::string::npos) << "PTX ISA of CUDA 11.8";
}

// The cache key holds NVRTC's version: one cache folder shared by two toolkits never hands one's
// image to the other.
TEST_F(SecondToolkit, ACacheHitNeverCrossesToolkits) {
  KILN_SKIP_UNDER_EMULATOR("the test uses the x86_64 NVRTC 11.8 (/usr/lib/x86_64-linux-gnu), which an aarch64 process cannot load");
  auto from = [](const ProcessResult& r) {
    const auto at = r.out.find("from:");
    return at == std::string::npos ? std::string() : r.out.substr(at, r.out.find('\n', at) - at);
  };
  ProcessResult first = compile("sm_90", false);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(from(first).find("NVRTC"), std::string::npos) << first.out;
  ProcessResult other = compile("sm_90", true);
  ASSERT_EQ(other.exit_code, 0) << other.err;
  EXPECT_NE(from(other).find("NVRTC"), std::string::npos) << "NVRTC 11.8 must compile, not hit 13.0's entry: " << other.out;
  ProcessResult again = compile("sm_90", true);
  EXPECT_NE(from(again).find("disk cache"), std::string::npos) << "its own entry is a hit: " << again.out;
  ProcessResult back = compile("sm_90", false);
  EXPECT_NE(from(back).find("disk cache"), std::string::npos) << back.out;
  // Two entries, one per toolkit, with different keys.
  auto key = [](const ProcessResult& r) {
    const auto at = r.out.find("key:");
    return r.out.substr(at, r.out.find('\n', at) - at);
  };
  EXPECT_NE(key(first), key(other));
  EXPECT_EQ(key(first), key(back));
  EXPECT_EQ(key(other), key(again));
}

}  // namespace
