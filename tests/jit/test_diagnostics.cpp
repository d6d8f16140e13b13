// Parsing NVRTC logs (as NVRTC 12 and 13 print them) and printing them like a compiler.
#include <gtest/gtest.h>

#include "kiln/jit/diagnostics.hpp"

namespace {

using namespace kiln::jit;

TEST(Diagnostics, ParsesInstantiationContext) {
  const std::string log =
      "k.cu(2): error: no operator \"+\" matches these operands\n"
      "      return a + b;\n"
      "               ^\n"
      "          detected during instantiation of \"T add(T, T) [with T=S]\" at line 5\n"
      "\n"
      "1 error detected in the compilation of \"k.cu\".\n";
  auto d = parse_nvrtc_log(log);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].file, "k.cu");
  EXPECT_EQ(d[0].line, 2);
  EXPECT_EQ(d[0].column, 14);
  EXPECT_EQ(d[0].source_line, "    return a + b;");
  ASSERT_EQ(d[0].context.size(), 1u);
  EXPECT_EQ(d[0].context[0], "detected during instantiation of \"T add(T, T) [with T=S]\" at line 5");
  EXPECT_EQ(d[0].format(),
            "k.cu:2:14: error: no operator \"+\" matches these operands\n"
            "      return a + b;\n"
            "               ^\n"
            "  detected during instantiation of \"T add(T, T) [with T=S]\" at line 5\n");
}

TEST(Diagnostics, ParsesFatalAndUnlocatedMessages) {
  auto d = parse_nvrtc_log(
      "k.cu(1): catastrophic error: cannot open source file \"missing.h\"\n"
      "  #include \"missing.h\"\n"
      "                      ^\n\n"
      "nvrtc: error: invalid value for --gpu-architecture (-arch)\n");
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].severity, Severity::fatal);
  EXPECT_EQ(d[0].message, "cannot open source file \"missing.h\"");
  EXPECT_TRUE(d[1].file.empty());
  EXPECT_EQ(d[1].line, 0);
  EXPECT_EQ(d[1].format(), "error: invalid value for --gpu-architecture (-arch)\n");
  EXPECT_TRUE(has_errors(d));
}

TEST(Diagnostics, DropsSummaryLinesAndKeepsWarningCodes) {
  auto d = parse_nvrtc_log(
      "a.cu(3): warning #177-D: variable \"y\" was declared but never referenced\n"
      "    int y = 1;\n"
      "        ^\n\n"
      "Remark: The warnings can be suppressed with \"-diag-suppress <warning-number>\"\n\n");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].code, "177-D");
  EXPECT_EQ(d[0].column, 7);
  EXPECT_FALSE(has_errors(d));
  EXPECT_EQ(d[0].format(),
            "a.cu:3:7: warning: variable \"y\" was declared but never referenced [#177-D]\n"
            "    int y = 1;\n"
            "        ^\n");
}

TEST(Diagnostics, NonDiagnosticTextYieldsNothing) {
  EXPECT_TRUE(parse_nvrtc_log("").empty());
  EXPECT_TRUE(parse_nvrtc_log("just some text\n(12): nothing\n").empty());
}

}  // namespace
