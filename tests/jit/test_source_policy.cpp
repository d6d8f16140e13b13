// jit::SourcePolicy: every rule refuses its case with a jit::PolicyError that carries the rule as a
// field, and whose text names the rule and the input.
#include <gtest/gtest.h>

#include "kernels.hpp"
#include "kiln/jit/compiler.hpp"
#include "kiln/jit/kernel_cache.hpp"
#include "kiln/jit/policy_error.hpp"
#include "kiln/jit/source_policy.hpp"

namespace {

using namespace kiln::jit;

Program clean() {
  Program p;
  p.name = "client.cu";
  p.source = test_kernels::kSaxpy;
  return p;
}

struct Refusal {
  std::string rule;  // PolicyError::rule()
  std::string text;  // the detail
};

// The policy's refusal, or empty rule and text when it accepted. Every refusal is a PolicyError.
Refusal refusal_of(const SourcePolicy& policy, const Program& p) {
  try {
    policy.check(p);
    return {};
  } catch (const PolicyError& e) {
    EXPECT_TRUE(e.is(kiln::Errc::invalid_argument));
    EXPECT_TRUE(e.limit().empty()) << e.limit();
    return {e.rule(), e.detail()};
  } catch (const kiln::Error& e) {
    ADD_FAILURE() << "a refusal that is not a PolicyError: " << e.what();
    return {"", e.detail()};
  }
}

// The policy's refusal text, or "" when it accepted.
std::string refusal(const SourcePolicy& policy, const Program& p) { return refusal_of(policy, p).text; }

void expect_refused(const Program& p, const std::string& rule, const std::string& detail,
                    const SourcePolicy& policy = {}) {
  const Refusal r = refusal_of(policy, p);
  EXPECT_EQ(r.rule, rule) << r.text;
  EXPECT_EQ(r.text.rfind("source policy rule '" + rule + "': ", 0), 0u) << r.text;
  EXPECT_NE(r.text.find(detail), std::string::npos) << r.text;
}

TEST(SourcePolicy, AcceptsCleanProgramsRegisteredHeadersAndToolkitIncludes) {
  Program p = clean();
  p.source = "#include \"mine.h\"\n#include <cub/block/block_reduce.cuh>\n#include <cuda_fp16.h>\n"
             "// asm in a comment\nconst char* s = \"asm\";\n" + p.source;
  p.headers["mine.h"] = "#pragma once\n";
  EXPECT_EQ(refusal(SourcePolicy{}, p), "");
}

TEST(SourcePolicy, SizeLimits) {
  SourcePolicy policy;
  policy.max_source_bytes = 10;
  expect_refused(clean(), "max_source_bytes", "'client.cu'", policy);
  policy = {};
  policy.max_headers = 1;
  Program p = clean();
  p.headers = {{"a.h", ""}, {"b.h", ""}};
  expect_refused(p, "max_headers", "2 headers", policy);
  policy = {};
  policy.max_header_bytes = 3;
  p.headers = {{"a.h", "long header"}};
  expect_refused(p, "max_header_bytes", "header 'a.h'", policy);
}

TEST(SourcePolicy, ControlCharactersAndNul) {
  Program p = clean();
  p.source += std::string("int a;\0", 7);
  expect_refused(p, "control_characters", "0x00 at offset");
  p = clean();
  p.source += "\x1b[2J";
  expect_refused(p, "control_characters", "0x1b");
  p = clean();
  p.headers["h.h"] = "\x7f";
  expect_refused(p, "control_characters", "header 'h.h'");
}

TEST(SourcePolicy, IncludeAllowList) {
  auto with = [](std::string include) {
    Program p = clean();
    p.source = include + "\n" + p.source;
    return p;
  };
  expect_refused(with("#include \"/etc/passwd\""), "include", "absolute path '/etc/passwd'");
  expect_refused(with("#include </etc/passwd>"), "include", "absolute path");
  expect_refused(with("#include <cuda/../../../../etc/passwd>"), "include", "'..'");
  expect_refused(with("#include \"secrets.txt\""), "include", "'secrets.txt' is neither a registered header");
  expect_refused(with("#include <not_in_the_toolkit.h>"), "include", "not_in_the_toolkit.h");
  expect_refused(with("#define F \"x.h\"\n#include F"), "include", "computed");
  expect_refused(with("  #  include_next <x.h>"), "include", "x.h");
  Program p = clean();
  p.headers["ok.h"] = "#include \"/etc/shadow\"\n";
  expect_refused(p, "include", "header 'ok.h'");
  p = clean();
  p.include_dirs = {"/etc"};
  expect_refused(p, "include_dirs", "'/etc'");
  p = clean();
  p.options.extra = {"-I/etc"};
  expect_refused(p, "extra_options", "'-I/etc'");
}

TEST(SourcePolicy, ForbiddenIdentifiers) {
  Program p = clean();
  p.source += "__device__ void t() { asm volatile(\"trap;\"); }\n";
  expect_refused(p, "forbidden_identifier", "line 6 uses 'asm'");
  p = clean();
  p.source += "__device__ void t() { __asm__(\"trap;\"); }\n";
  expect_refused(p, "forbidden_identifier", "'__asm__'");
  p = clean();
  p.source += "int plasma = 1; // asm\n";
  EXPECT_EQ(refusal(SourcePolicy{}, p), "");
}

TEST(SourcePolicy, ForbiddenPtxInstructionsAfterCompile) {
  SourcePolicy policy;
  policy.forbidden_identifiers.clear();  // let inline asm through to show the PTX check catches it
  policy.forbidden_ptx_instructions = {"brkpt", "trap"};
  Program p = clean();
  p.source += "__global__ void t(int* p) { if (*p) asm volatile(\"brkpt;\"); }\n";
  const Artifact ptx = compile(p, Target::for_arch(90, ImageKind::ptx)).value();
  try {
    policy.check_ptx(ptx.image(), p.name);
    FAIL();
  } catch (const PolicyError& e) {
    EXPECT_EQ(e.rule(), "forbidden_ptx_instruction");
    EXPECT_NE(std::string(e.what()).find("source policy rule 'forbidden_ptx_instruction'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("'brkpt'"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(policy.check_ptx(compile(clean(), Target::for_arch(90, ImageKind::ptx)).value().image(), "c"));
  EXPECT_THROW(policy.check_ptx("  @%p1 trap;\n", "x"), kiln::Error);
  EXPECT_NO_THROW(policy.check_ptx("trap_label:\n  // trap\n  mov.u32 %r1, 1;\n", "x"));

  // Through the cache, a CUBIN target is checked through its PTX twin; nothing is cached.
  KernelCacheOptions o;
  o.use_disk = false;
  o.policy = policy;
  KernelCache cache(o);
  EXPECT_THROW(cache.compile(p, Target::for_arch(90)), PolicyError);
  EXPECT_EQ(cache.stats().memory_entries, 0u);
  EXPECT_NO_THROW(cache.compile(clean(), Target::for_arch(90)));
}

TEST(SourcePolicy, PtxRuleIsAPolicyErrorWithoutNvrtc) {
  SourcePolicy policy;
  policy.forbidden_ptx_instructions = {"brkpt"};
  try {
    policy.check_ptx(".visible .entry k()\n{\n  { brkpt; }\n  ret;\n}\n", "k.cu");
    FAIL() << "brkpt was let through";
  } catch (const PolicyError& e) {
    EXPECT_EQ(e.rule(), "forbidden_ptx_instruction");
    EXPECT_TRUE(e.is(kiln::Errc::invalid_argument));
    EXPECT_EQ(e.detail(), "source policy rule 'forbidden_ptx_instruction': program 'k.cu' compiles to PTX line 3 "
                          "using instruction 'brkpt'");
  }
}

TEST(SourcePolicy, PolicyErrorIsAKilnErrorWithItsRuleAndLimit) {
  const PolicyError e("max_compile_time", "3000 ms", "program 'x.cu' ran too long", kiln::Errc::timeout);
  const kiln::Error& base = e;
  EXPECT_TRUE(base.is(kiln::Errc::timeout));
  EXPECT_EQ(e.rule(), "max_compile_time");
  EXPECT_EQ(e.limit(), "3000 ms");
  EXPECT_EQ(base.detail(), "source policy rule 'max_compile_time' (3000 ms): program 'x.cu' ran too long");
  EXPECT_NE(std::string(base.what()).find(base.detail()), std::string::npos) << base.what();
  const PolicyError plain("include", "", "bad");
  EXPECT_TRUE(plain.is(kiln::Errc::invalid_argument));
  EXPECT_EQ(plain.detail(), "source policy rule 'include': bad");
  // Thrown as a PolicyError, it survives an exception_ptr (KernelCache's single flight) typed.
  std::exception_ptr p = std::make_exception_ptr(plain);
  try {
    std::rethrow_exception(p);
  } catch (const PolicyError& again) {
    EXPECT_EQ(again.rule(), "include");
  }
}

TEST(SourcePolicy, KernelCacheChecksBeforeCompiling) {
  KernelCacheOptions o;
  o.use_disk = false;
  o.policy = SourcePolicy{};
  KernelCache cache(o);
  Program p = clean();
  p.source = "#include \"/etc/passwd\"\n";
  try {
    cache.compile(p, Target::for_arch(90));
    FAIL();
  } catch (const PolicyError& e) {
    EXPECT_EQ(e.rule(), "include");
    EXPECT_NE(std::string(e.what()).find("rule 'include'"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("root:"), std::string::npos) << "the file leaked: " << e.what();
  }
  EXPECT_EQ(cache.stats().compiles + cache.stats().compile_failures, 0u);
}

}  // namespace
