// jit::CacheKey: what changes the key and what must not.
#include <gtest/gtest.h>

#include "kernels.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/driver/nvrtc_api.hpp"
#include "kiln/jit/cache_key.hpp"

namespace {

using namespace kiln::jit;

const KeyContext kContext{13000, {"/cuda/include", "/cuda/include/cccl"}};

Program base() {
  Program p;
  p.source = test_kernels::kTemplated;
  p.headers = {{"a.h", "#define A 1\n"}, {"b.h", "#define B 2\n"}};
  p.include_dirs = {"/x", "/y"};
  p.options.defines = {"ALPHA=1", "BETA", "GAMMA=3"};
  p.name_expressions = {"fill<1>", "fill<2>"};
  return p;
}

CacheKey key(const Program& p, const Target& t = Target::for_arch(90), const KeyContext& c = kContext) {
  return cache_key(p, t, c);
}

// Keys name disk entries that outlive a kiln version: a change to how the key is computed must not
// change its value (this one was computed by kiln 0.1.0 before the key's bytes were buffered).
TEST(CacheKey, KeepsItsValueAcrossVersions) {
  Program p;
  p.name = "golden.cu";
  p.source = "extern \"C\" __global__ void k(float* x) { x[0] = N; }";
  p.headers["a.h"] = "#define A 1";
  p.include_dirs = {"/opt/include"};
  p.options.standard = "c++17";
  p.options.defines = {"N=2.0f", "B"};
  p.options.line_info = true;
  p.options.max_registers = 64;
  p.options.minimal = true;
  p.options.extra = {"-dopt=on"};
  p.name_expressions = {"k"};
  const KeyContext context{13000, {"/usr/local/cuda/include"}};
  EXPECT_EQ(cache_key(p, Target::for_arch(90), context).hex(),
            "01b4b9ce159a8801481cc7b9e522e35080c525080f25a59720f92ce7286c3bc1");
}

TEST(CacheKey, IsStableAndHex) {
  EXPECT_EQ(key(base()), key(base()));
  const std::string hex = key(base()).hex();
  EXPECT_EQ(hex.size(), 64u);
  EXPECT_EQ(CacheKey::from_hex(hex), key(base()));
  try {
    CacheKey::from_hex("xyz");
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'xyz'"), std::string::npos);
  }
}

TEST(CacheKey, OrderOfDefinesAndNameExpressionsDoesNotMatter) {
  Program p = base();
  p.options.defines = {"GAMMA=3", "ALPHA=1", "BETA"};
  p.name_expressions = {"fill<2>", "fill<1>", "fill<2>"};
  EXPECT_EQ(key(p), key(base()));
}

TEST(CacheKey, RedefiningOneNameKeepsItsOrder) {
  Program a = base(), b = base();
  a.options.defines = {"X=1", "X=2"};
  b.options.defines = {"X=2", "X=1"};
  EXPECT_NE(key(a), key(b));
}

TEST(CacheKey, EverythingThatChangesTheOutputChangesTheKey) {
  const CacheKey reference = key(base());
  std::vector<std::pair<std::string, Program>> variants;
  auto vary = [&](std::string what, auto change) {
    Program p = base();
    change(p);
    variants.emplace_back(std::move(what), std::move(p));
  };
  vary("source", [](Program& p) { p.source += " "; });
  vary("header content", [](Program& p) { p.headers["a.h"] = "#define A 2\n"; });
  vary("header name", [](Program& p) { p.headers["c.h"] = p.headers["a.h"]; p.headers.erase("a.h"); });
  vary("added header", [](Program& p) { p.headers["c.h"] = ""; });
  vary("include dir order", [](Program& p) { std::swap(p.include_dirs[0], p.include_dirs[1]); });
  vary("define value", [](Program& p) { p.options.defines[0] = "ALPHA=2"; });
  vary("standard", [](Program& p) { p.options.standard = "c++20"; });
  vary("line info", [](Program& p) { p.options.line_info = true; });
  vary("fast math", [](Program& p) { p.options.fast_math = true; });
  vary("registers", [](Program& p) { p.options.max_registers = 64; });
  vary("rdc", [](Program& p) { p.options.relocatable_device_code = true; });
  vary("minimal", [](Program& p) { p.options.minimal = true; });
  vary("extra", [](Program& p) { p.options.extra = {"-G"}; });
  vary("name expression", [](Program& p) { p.name_expressions.push_back("fill<3>"); });
  vary("program name", [](Program& p) { p.name = "other.cu"; });
  for (const auto& [what, p] : variants) EXPECT_NE(key(p), reference) << what;

  EXPECT_NE(key(base(), Target::for_arch(80)), reference);
  EXPECT_NE(key(base(), Target::for_arch(90, ImageKind::ptx)), reference);
  EXPECT_NE(key(base(), Target::for_arch(90), KeyContext{12080, kContext.toolkit_dirs}), reference);
  EXPECT_NE(key(base(), Target::for_arch(90), KeyContext{13000, {"/other/include"}}), reference);
}

TEST(CacheKey, TargetReasonIsNotIdentity) {
  Target t = Target::for_arch(90);
  t.reason = "something else";
  EXPECT_EQ(key(base(), t), key(base()));
}

TEST(CacheKey, CurrentContextUsesThisNvrtc) {
  KeyContext c = KeyContext::current();
  EXPECT_GE(c.nvrtc_cuda_version, 11080);  // CUDA 11.8's NVRTC is the oldest kiln is tested with
  EXPECT_EQ(c.nvrtc_cuda_version, kiln::driver::nvrtc_library().version.as_cuda_version());
  EXPECT_EQ(cache_key(base(), Target::for_arch(90)), cache_key(base(), Target::for_arch(90), c));
}

}  // namespace
