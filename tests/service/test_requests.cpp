#include <gtest/gtest.h>

#include <bit>
#include <cstring>

#include "kiln/service/requests.hpp"

namespace kiln::service {
namespace {

TEST(LaunchRequestParser, ParsesEveryField) {
  auto parsed = parse_launch_request(R"({"kernel": 7, "function": "fill<3>", "grid": [4, 2], "block": 128,
      "shared_bytes": 1024, "priority": "high", "deadline_ms": 250, "device": 1, "wait": true,
      "arguments": [{"type": "f32", "value": 1.5}, {"type": "i32", "value": -2}, {"type": "u64", "value": 18446744073709551615},
                    {"type": "f64", "value": -0.25}, {"type": "i64", "value": -3}, {"type": "u32", "value": 7},
                    {"buffer": 12, "offset": 64}]})");
  ASSERT_TRUE(parsed.ok()) << parsed.error().text();
  const LaunchRequest& r = parsed.value();
  EXPECT_EQ(r.kernel, 7u);
  EXPECT_EQ(r.function, "fill<3>");
  EXPECT_EQ(r.grid, (std::array<unsigned, 3>{4, 2, 1}));
  EXPECT_EQ(r.block, (std::array<unsigned, 3>{128, 1, 1}));
  EXPECT_EQ(r.shared_bytes, 1024u);
  EXPECT_EQ(r.priority, Priority::high);
  EXPECT_EQ(r.deadline, std::chrono::milliseconds(250));
  EXPECT_EQ(r.device, 1);
  EXPECT_TRUE(r.wait);
  ASSERT_EQ(r.arguments.size(), 7u);
  const auto& f32 = std::get<ScalarArgument>(r.arguments[0]);
  EXPECT_EQ(f32.size(), 4u);
  EXPECT_EQ(f32.bits, std::bit_cast<std::uint32_t>(1.5f));
  EXPECT_EQ(std::get<ScalarArgument>(r.arguments[1]).bits, 0xFFFFFFFEu);  // -2 as 32 bits
  EXPECT_EQ(std::get<ScalarArgument>(r.arguments[2]).bits, ~std::uint64_t{0});
  EXPECT_EQ(std::get<ScalarArgument>(r.arguments[3]).bits, std::bit_cast<std::uint64_t>(-0.25));
  EXPECT_EQ(std::get<ScalarArgument>(r.arguments[4]).bits, static_cast<std::uint64_t>(-3ll));
  EXPECT_EQ(std::get<ScalarArgument>(r.arguments[4]).size(), 8u);
  const auto& buffer = std::get<BufferArgument>(r.arguments[6]);
  EXPECT_EQ(buffer.buffer, 12u);
  EXPECT_EQ(buffer.offset, 64u);
}

TEST(LaunchRequestParser, DefaultsAreOneThreadNormalPriorityAsync) {
  auto parsed = parse_launch_request(R"({"kernel": 1, "function": "k"})");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed.value().grid, (std::array<unsigned, 3>{1, 1, 1}));
  EXPECT_EQ(parsed.value().priority, Priority::normal);
  EXPECT_FALSE(parsed.value().wait);
  EXPECT_FALSE(parsed.value().deadline);
}

TEST(LaunchRequestParser, RefusalsNameTheField) {
  struct Case {
    const char* body;
    const char* field;
    const char* text;
  };
  const Case cases[] = {
      {"", "", "malformed JSON"},
      {"42", "", "expected a JSON object"},
      {R"({"function": "k"})", "kernel", "missing"},
      {R"({"kernel": -1, "function": "k"})", "kernel", "non-negative integer"},
      {R"({"kernel": 1})", "function", "missing"},
      {R"({"kernel": 1, "function": ""})", "function", "is empty"},
      {R"({"kernel": 1, "function": "k", "grid": [1, 2, 3, 4]})", "grid", "1 to 3"},
      {R"({"kernel": 1, "function": "k", "grid": [1, 70000]})", "grid[1]", "at most 65535"},
      {R"({"kernel": 1, "function": "k", "block": [2048]})", "block[0]", "at most 1024"},
      {R"({"kernel": 1, "function": "k", "block": [32, 33]})", "block", "at most 1024 threads"},
      {R"({"kernel": 1, "function": "k", "arguments": [3]})", "arguments[0]", "expected an object"},
      {R"({"kernel": 1, "function": "k", "arguments": [{"type": "f32"}]})", "arguments[0].value", "missing"},
      {R"({"kernel": 1, "function": "k", "arguments": [{"type": "f32", "value": 1e300}]})", "arguments[0].value", "does not fit in f32"},
      {R"({"kernel": 1, "function": "k", "arguments": [{"type": "u32", "value": 4294967296}]})", "arguments[0].value", "at most 4294967295"},
      {R"({"kernel": 1, "function": "k", "arguments": [{"type": "i64", "value": 1.5}]})", "arguments[0].value", "expected an integer"},
      {R"({"kernel": 1, "function": "k", "arguments": [{"buffer": 1, "offset": -4}]})", "arguments[0].offset", "non-negative"},
      {R"({"kernel": 1, "function": "k", "arguments": [{"buffer": 1, "size": 4}]})", "arguments[0].size", "unknown field"},
      {R"({"kernel": 1, "function": "k", "deadline_ms": 0})", "deadline_ms", "at least 1"},
      {R"({"kernel": 1, "function": "k", "wait": "yes"})", "wait", "true or false"},
      {R"({"kernel": 1, "function": "k", "priority": 1})", "priority", "expected a string"},
  };
  for (const Case& c : cases) {
    auto parsed = parse_launch_request(c.body);
    ASSERT_FALSE(parsed.ok()) << c.body;
    EXPECT_EQ(parsed.error().field, c.field) << c.body << ": " << parsed.error().text();
    EXPECT_NE(parsed.error().text().find(c.text), std::string::npos) << c.body << ": " << parsed.error().text();
  }
  auto many = parse_launch_request(R"({"kernel": 1, "function": "k", "arguments": [{"type":"i32","value":1},{"type":"i32","value":2}]})",
                                   RequestLimits{1});
  ASSERT_FALSE(many.ok());
  EXPECT_NE(many.error().text().find("at most 1 arguments"), std::string::npos);
}

TEST(KernelRequestParser, ParsesProgram) {
  auto parsed = parse_kernel_request(R"({"source": "__global__ void k() {}", "name": "k.cu",
      "headers": {"util.h": "#pragma once"}, "name_expressions": ["k"],
      "options": {"std": "c++17", "defines": ["N=4"], "fast_math": true, "line_info": true, "max_registers": 64}})");
  ASSERT_TRUE(parsed.ok()) << parsed.error().text();
  const jit::Program& p = parsed.value().program;
  EXPECT_EQ(p.name, "k.cu");
  EXPECT_EQ(p.headers.at("util.h"), "#pragma once");
  EXPECT_EQ(p.name_expressions, std::vector<std::string>{"k"});
  EXPECT_EQ(p.options.standard, "c++17");
  EXPECT_EQ(p.options.defines, std::vector<std::string>{"N=4"});
  EXPECT_TRUE(p.options.fast_math);
  EXPECT_TRUE(p.options.line_info);
  EXPECT_EQ(p.options.max_registers, 64);
}

TEST(KernelRequestParser, Refusals) {
  EXPECT_EQ(parse_kernel_request("{}").error().field, "source");
  EXPECT_EQ(parse_kernel_request(R"({"source": ""})").error().text(), "source: is empty");
  EXPECT_EQ(parse_kernel_request(R"({"source": "x", "headers": []})").error().field, "headers");
  EXPECT_EQ(parse_kernel_request(R"({"source": "x", "headers": {"a.h": 1}})").error().field, "headers.a.h");
  EXPECT_EQ(parse_kernel_request(R"({"source": "x", "options": {"O3": true}})").error().field, "options.O3");
  EXPECT_EQ(parse_kernel_request(R"({"source": "x", "name_expressions": ["a", 2]})").error().field, "name_expressions[1]");
}

TEST(BufferRequestParser, ParsesAndRefuses) {
  auto ok = parse_buffer_request(R"({"device": 1, "bytes": 4096, "tag": "weights"})");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok.value().device, 1);
  EXPECT_EQ(ok.value().bytes, 4096u);
  EXPECT_EQ(ok.value().tag, "weights");
  EXPECT_EQ(parse_buffer_request(R"({"bytes": 0})").error().text(), "bytes: must be at least 1");
  EXPECT_EQ(parse_buffer_request(R"({})").error().field, "bytes");
  EXPECT_EQ(parse_buffer_request(R"({"bytes": 1, "device": 5000})").error().field, "device");
}

TEST(RequestParsers, SurviveHostileInput) {
  // Deep nesting, huge numbers, embedded NULs: refused with a reason, never a crash.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  for (const std::string& body : {deep, std::string("{\"kernel\": 1e999999}"), std::string("{\"k\0\": 1}", 10),
                                  std::string("\xff\xfe{}", 4)}) {
    EXPECT_FALSE(parse_launch_request(body).ok());
    EXPECT_FALSE(parse_kernel_request(body).ok());
    EXPECT_FALSE(parse_buffer_request(body).ok());
  }
}

}  // namespace
}  // namespace kiln::service
