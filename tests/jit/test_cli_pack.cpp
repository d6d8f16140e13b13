// `kiln pack` and `kiln pack --verify`, run as real child processes on a private cache folder.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels.hpp"
#include "kiln/jit/package.hpp"
#include "support/files.hpp"
#include "support/process.hpp"

namespace {

using kiln::testing::cli_path;
using kiln::testing::ProcessResult;
using kiln::testing::read_all;
using kiln::testing::run_process;
using kiln::testing::write_all;
using nlohmann::json;
namespace fs = std::filesystem;

class CliPack : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = kiln::testing::fresh_test_folder("kiln-jit-cli-pack");
    source_ = dir_ / "saxpy.cu";
    write_all(source_, kiln::jit::test_kernels::kSaxpy);
  }
  void TearDown() override { fs::remove_all(dir_); }
  ProcessResult kiln(std::vector<std::string> args) {
    args.insert(args.begin(), cli_path());
    return run_process(args, {{{"KILN_CACHE_DIR", (dir_ / "cache").string()}}, {}});
  }
  // `kiln pack` of saxpy with `entry`, for sm_90 + compute_90, into dir_/<out>, plus `extra`.
  ProcessResult pack(const std::string& out, const std::string& entry = "saxpy(f32,ptr,ptr,i32)",
                     std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"pack",   source_.string(), "--name", "saxpy", "--version", "3",
                                     "--entry", entry,           "--arch", "sm_90", "--arch",    "compute_90",
                                     "-o",     (dir_ / out).string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return kiln(args);
  }
  fs::path dir_;
  fs::path source_;
};

TEST_F(CliPack, PacksThenVerifies) {
  ProcessResult r = pack("saxpy-3", "saxpy(f32,ptr,ptr,i32)", {"--description", "y = a x + y", "--tenant", "alice"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("packed saxpy version 3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sm_90.cubin  cubin sm_90, "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("compute_90.ptx  ptx compute_90, "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("saxpy(f32, ptr, ptr, i32) -> saxpy"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 compiled"), std::string::npos) << r.out;
  // The library opens what the CLI wrote.
  const kiln::jit::Package p = kiln::jit::Package::open(dir_ / "saxpy-3");
  EXPECT_EQ(p.manifest().description, "y = a x + y");
  EXPECT_EQ(p.manifest().tenants, std::vector<std::string>{"alice"});
  EXPECT_EQ(p.manifest().source, "src/saxpy.cu");

  r = kiln({"pack", "--verify", (dir_ / "saxpy-3").string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("package saxpy version 3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("verified"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sm_90: sm_90.cubin"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sm_100: compute_90.ptx"), std::string::npos) << r.out;

  r = kiln({"pack", "--verify", (dir_ / "saxpy-3").string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["name"], "saxpy");
  EXPECT_EQ(j["version"], 3);
  EXPECT_EQ(j["images"].size(), 2u);
  EXPECT_EQ(j["entry_points"][0]["parameters"], json({"f32", "ptr", "ptr", "i32"}));
  EXPECT_EQ(j["image_for"]["sm_90"]["file"], "sm_90.cubin");
  EXPECT_EQ(j["image_for"]["sm_100"]["kind"], "ptx");
  EXPECT_TRUE(j["image_for"]["sm_80"]["file"].is_null());

  // A second pack of the same kernel hits the disk cache.
  r = pack("saxpy-3-again", "saxpy(f32,ptr,ptr,i32)", {"--json", "--no-source"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const json again = json::parse(r.out);
  EXPECT_EQ(again["compiled"], 0);
  EXPECT_EQ(again["disk_hits"], 2);
  EXPECT_EQ(again["source"], "");
}

TEST_F(CliPack, VerifyRefusesATamperedPackage) {
  ASSERT_EQ(pack("p").exit_code, 0);
  std::string bytes = read_all(dir_ / "p" / "sm_90.cubin");
  bytes[bytes.size() / 2] ^= 1;
  write_all(dir_ / "p" / "sm_90.cubin", bytes);
  ProcessResult r = kiln({"pack", "--verify", (dir_ / "p").string()});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("checksum_mismatch"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("sm_90.cubin"), std::string::npos) << r.err;
  r = kiln({"pack", "--verify", (dir_ / "p").string(), "--json"});
  EXPECT_EQ(r.exit_code, 1);
  const json j = json::parse(r.out);
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["problem"], "checksum_mismatch");
  EXPECT_EQ(j["file"], "sm_90.cubin");
  // No package at all.
  r = kiln({"pack", "--verify", (dir_ / "none").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("incomplete"), std::string::npos) << r.err;
}

TEST_F(CliPack, BadInputIsBadUsage) {
  struct Case {
    std::vector<std::string> args;
    const char* message;
  };
  const std::string out = (dir_ / "o").string();
  const std::vector<Case> cases = {
      {{"pack", source_.string(), "--name", "s", "--version", "1", "--entry", "saxpy(f32,ptr", "--arch", "sm_90", "-o", out},
       "--entry: 'saxpy(f32,ptr'"},
      {{"pack", source_.string(), "--name", "s", "--version", "1", "--entry", "saxpy", "--arch", "sm_90", "-o", out},
       "no parameter list"},
      {{"pack", source_.string(), "--name", "s", "--version", "1", "--entry", "saxpy(float,ptr,ptr,i32)", "--arch",
        "sm_90", "-o", out},
       "'float' is not a parameter type"},
      {{"pack", source_.string(), "--name", "s", "--version", "1", "--entry", "saxpy(f32,ptr,ptr,i32)", "--arch",
        "sm_9x", "-o", out},
       "'sm_9x' is not an architecture"},
      {{"pack", source_.string(), "--name", "s", "--version", "1", "--entry", "saxpy(f32,ptr,ptr,i32)", "--arch",
        "sm_91", "-o", out},
       "does not compile for architecture 91"},
      {{"pack", source_.string(), "--name", "s", "--version", "1", "--entry", "saxpy(f32,ptr,ptr,i32)", "--arch",
        "lto_90", "-o", out},
       "not LTO-IR"},
      {{"pack", (dir_ / "missing.cu").string(), "--name", "s", "--version", "1", "--entry", "saxpy(f32,ptr,ptr,i32)",
        "--arch", "sm_90", "-o", out},
       "missing.cu"},
      {{"pack", source_.string(), "--name", "s", "--entry", "saxpy(f32,ptr,ptr,i32)", "--arch", "sm_90", "-o", out},
       "--version"},
      {{"pack", source_.string(), "--name", "s", "--version", "1", "--arch", "sm_90", "-o", out}, "--entry"},
      {{"pack", source_.string(), "--name", "s", "--version", "1", "--entry", "saxpy(f32,ptr,ptr,i32)", "--arch",
        "sm_90", "-I", dir_.string(), "-o", out},
       "--no-source"},
      {{"pack", source_.string(), "--name", "s", "--version", "1", "--entry", "saxpy(f32,ptr,ptr,i32)", "--arch",
        "sm_90", "--header", "nameonly", "-o", out},
       "NAME=PATH"},
  };
  for (const Case& c : cases) {
    const ProcessResult r = kiln(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.message << ": " << r.out << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out)) << c.message;
  }
}

TEST_F(CliPack, WrongDeclaredParametersFail) {
  ProcessResult r = pack("p", "saxpy(f32,ptr,ptr)");
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("parameters_differ"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'saxpy'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "p"));
  r = pack("p", "saxpy(f32,ptr,ptr)", {"--json"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_EQ(json::parse(r.out)["problem"], "parameters_differ");
  r = pack("p", "saxpy(f32,ptr,ptr,i32)", {"--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // An existing output folder is never overwritten.
  r = pack("p");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
}

TEST_F(CliPack, HeadersTravelAndCompileErrorsPrintLikeACompiler) {
  write_all(dir_ / "scale.h", "#define SCALE 2.0f\n");
  write_all(source_, "#include \"scale.h\"\nextern \"C\" __global__ void scale(float* x) { x[0] *= SCALE; }\n");
  ProcessResult r = pack("p", "scale(ptr)", {"--header", "scale.h=" + (dir_ / "scale.h").string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const kiln::jit::Package p = kiln::jit::Package::open(dir_ / "p");
  EXPECT_EQ(p.manifest().headers.at("scale.h"), "include/scale.h");
  EXPECT_EQ(read_all(dir_ / "p" / "include/scale.h"), "#define SCALE 2.0f\n");

  write_all(source_, "extern \"C\" __global__ void scale(float* x) {\n  x[0] *= z;\n}\n");
  r = pack("q", "scale(ptr)");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("saxpy.cu:2:"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "q"));
  r = pack("q", "scale(ptr)", {"--json"});
  EXPECT_EQ(r.exit_code, 1);
  const json j = json::parse(r.out);
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["error"], "KILN_ERROR_COMPILE_FAILED");
  EXPECT_NE(j["message"].get<std::string>().find("saxpy.cu:2:"), std::string::npos) << r.out;
}

}  // namespace
