#include <gtest/gtest.h>

#include <bit>
#include <cstring>

#include "detail/error_body.hpp"
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

TEST(LaunchRequestParser, AStringKernelNamesARepositoryPackage) {
  auto named = parse_launch_request(R"({"kernel": "stamp:2"})");
  ASSERT_TRUE(named.ok()) << named.error().text();
  EXPECT_EQ(named.value().package, "stamp:2");
  EXPECT_EQ(named.value().kernel, 0u);
  EXPECT_TRUE(named.value().function.empty()) << "a package's one entry point needs no name";
  auto by_id = parse_launch_request(R"({"kernel": 7})");
  ASSERT_FALSE(by_id.ok());
  EXPECT_EQ(by_id.error().field, "function") << "a kernel id still needs its function";
  auto empty = parse_launch_request(R"({"kernel": ""})");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().field, "kernel");
}

TEST(PackageVersionRequestParser, AnEmptyBodyOrAVersion) {
  EXPECT_FALSE(parse_package_version_request("").value().version.has_value());
  EXPECT_FALSE(parse_package_version_request(" {} ").value().version.has_value());
  EXPECT_EQ(parse_package_version_request(R"({"version": 3})").value().version, 3u);
  for (const char* bad : {R"({"version": 0})", R"({"version": "3"})", R"({"versions": 3})", "[]"}) {
    auto r = parse_package_version_request(bad);
    EXPECT_FALSE(r.ok()) << bad;
  }
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

// Numbers JSON can write that the fields cannot hold: a clear refusal naming the field.
TEST(RequestParsers, HugeNumbersAreRefusedNamingTheField) {
  struct Case {
    std::string body, field, text;
  };
  const Case cases[] = {
      {R"({"bytes": 1e999})", "bytes", "out of range"},
      {R"({"bytes": -1e999})", "bytes", "out of range"},
      {R"({"bytes": 18446744073709551616})", "bytes", "must be at most 18446744073709551615"},
      {R"({"bytes": 99999999999999999999999999999})", "bytes", "must be at most 18446744073709551615"},
      {R"({"bytes": 1.5})", "bytes", "expected a non-negative integer, got 1.5"},
      {R"({"bytes": 4e3})", "bytes", "expected a non-negative integer"},
      {R"({"bytes": -1})", "bytes", "expected a non-negative integer, got -1"},
      {R"({"bytes": -0})", "bytes", "must be at least 1"},
      {R"({"bytes": 8, "device": 1e300})", "device", "must be at most 1023"},
  };
  for (const Case& c : cases) {
    auto r = parse_buffer_request(c.body);
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.error().field, c.field) << c.body << " -> " << r.error().text();
    EXPECT_NE(r.error().message.find(c.text), std::string::npos) << c.body << " -> " << r.error().text();
  }
  const Case launches[] = {
      {R"({"kernel": 99999999999999999999, "function": "k"})", "kernel", "must be at most"},
      {R"({"kernel": 1, "function": "k", "arguments": [{"type": "f64", "value": 1e400}]})", "arguments[0].value", "out of range"},
      {R"({"kernel": 1, "function": "k", "arguments": [{"type": "f32", "value": 1e39}]})", "arguments[0].value", "does not fit in f32"},
      {R"({"kernel": 1, "function": "k", "arguments": [1, {"type": "i64", "value": -9223372036854775809}]})", "arguments[0]",
       "expected an object"},
      {R"({"kernel": 1, "function": "k", "arguments": [{"type": "i64", "value": -9223372036854775809}]})", "arguments[0].value",
       "does not fit in i64"},
      {R"({"kernel": 1, "function": "k", "arguments": [{"type": "i64", "value": 9223372036854775808}]})", "arguments[0].value",
       "does not fit in i64"},
      {R"({"kernel": 1, "function": "k", "arguments": [{"type": "i32", "value": 2.5}]})", "arguments[0].value",
       "expected an integer"},
      {R"({"kernel": 1, "function": "k", "arguments": [{"type": "u64", "value": 18446744073709551616}]})", "arguments[0].value",
       "must be at most 18446744073709551615"},
      {R"({"kernel": 1, "function": "k", "grid": [1, 1e999]})", "grid[1]", "out of range"},
      {R"({"kernel": 1, "function": "k", "deadline_ms": 1e10})", "deadline_ms", "must be at most 2147483647"},
  };
  for (const Case& c : launches) {
    auto r = parse_launch_request(c.body);
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.error().field, c.field) << c.body << " -> " << r.error().text();
    EXPECT_NE(r.error().message.find(c.text), std::string::npos) << c.body << " -> " << r.error().text();
  }
  // The extremes that do fit are values.
  auto fits = parse_launch_request(R"({"kernel": 18446744073709551615, "function": "k", "arguments": [
      {"type": "i64", "value": -9223372036854775808}, {"type": "f64", "value": 1.7976931348623157e308}]})");
  ASSERT_TRUE(fits.ok()) << fits.error().text();
  EXPECT_EQ(fits.value().kernel, 18446744073709551615u);
}

// Limits that hold while parsing: a body is refused before it becomes a DOM.
TEST(RequestParsers, DepthValuesAndDuplicateKeysAreBoundedWhileParsing) {
  const RequestLimits limits{256, 8, 100};
  auto deep = parse_buffer_request(R"({"bytes": 1, "tag": [[[[[[[[[1]]]]]]]]]})", limits);
  ASSERT_FALSE(deep.ok());
  EXPECT_EQ(deep.error().field, "tag[0][0][0][0][0][0][0]");
  EXPECT_NE(deep.error().message.find("nested deeper than 8 levels (max_json_depth)"), std::string::npos) << deep.error().text();
  EXPECT_TRUE(parse_buffer_request(R"({"bytes": 1, "tag": "x"})", limits).ok());

  std::string many = R"({"kernel": 1, "function": "k", "arguments": [)";
  for (int i = 0; i < 200; ++i) many += i ? ",1" : "1";
  many += "]}";
  auto wide = parse_launch_request(many, limits);
  ASSERT_FALSE(wide.ok());
  EXPECT_NE(wide.error().message.find("more than 100 JSON values and keys (max_json_values)"), std::string::npos)
      << wide.error().text();

  auto twice = parse_launch_request(R"({"kernel": 1, "function": "k", "arguments": [{"type": "i32", "value": 1, "value": 2}]})");
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().field, "arguments[0].value");
  EXPECT_NE(twice.error().message.find("duplicate key"), std::string::npos);

  // The defaults: 4 MiB of '[' or of "1," is refused at once, at depth 64 or after 65536 values.
  const std::string brackets(4 << 20, '[');
  auto b = parse_kernel_request(brackets);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message.find("max_json_depth"), std::string::npos) << b.error().text();
  std::string numbers = "[";
  while (numbers.size() < (4u << 20)) numbers += "1,";
  numbers += "1]";
  auto n = parse_kernel_request(numbers);
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.error().message.find("max_json_values"), std::string::npos) << n.error().text();
}

// Refusals quote the body: what they quote is valid UTF-8, raw bytes escaped and cuts on a
// character boundary, so an error body can always be rendered.
TEST(RequestParsers, RefusalsAreValidUtf8) {
  std::string accents;
  for (int i = 0; i < 40; ++i) accents += "\\u00e9";
  const std::string bodies[] = {
      "{\"source\": \"\xff\"}",
      "{\"kernel\": \xff\xfe}",
      "\xc3",
      "{\"bytes\": \"" + accents + "\"}",
      "{\"bytes\": 1, \"" + accents + "\": 2}",
      "{\"kernel\": 1, \"function\": \"k\", \"priority\": \"" + accents + "\"}",
      "{\"source\": \"" + std::string(100000, 'x'),
  };
  for (const std::string& body : bodies) {
    for (const RequestError& e : {parse_launch_request(body).error(), parse_buffer_request(body).error()}) {
      EXPECT_TRUE(detail::is_valid_utf8(e.field)) << body;
      EXPECT_TRUE(detail::is_valid_utf8(e.message)) << body << " -> " << e.message;
      EXPECT_LT(e.text().size(), 1000u) << "a refusal quotes at most a little of the body";
      EXPECT_NO_THROW((void)nlohmann::json(e.text()).dump());
    }
  }
}

TEST(ErrorBody, PrintableEscapesInvalidBytesAndCutsOnCharacterBoundaries) {
  EXPECT_EQ(detail::printable(R"(a\xffb)"), R"(a\xffb)");  // ASCII as it is
  EXPECT_EQ(detail::printable("/\xff\xfe"), R"(/\xFF\xFE)");
  EXPECT_EQ(detail::printable("\xed\xa0\x80"), R"(\xED\xA0\x80)");          // a surrogate
  EXPECT_EQ(detail::printable("\xc0\xaf"), R"(\xC0\xAF)");                  // an overlong '/'
  EXPECT_EQ(detail::printable("\xf4\x90\x80\x80"), R"(\xF4\x90\x80\x80)");  // above U+10FFFF
  EXPECT_EQ(detail::printable("\xc3"), R"(\xC3)");                          // cut short
  const std::string fine = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x94\xa5";
  EXPECT_EQ(detail::printable(fine), fine);
  EXPECT_EQ(detail::printable("\xc3\xa9\xc3\xa9\xc3\xa9", 5), "\xc3\xa9\xc3\xa9...");  // not 2.5 characters
  EXPECT_EQ(detail::printable("\xe2\x82\xac", 2), "...");
  const std::string body = detail::error_body("not_found", "no route for GET /\xff", {{"field", "\xfe"}});
  EXPECT_TRUE(detail::is_valid_utf8(body)) << body;
  const auto parsed = nlohmann::json::parse(body);
  EXPECT_EQ(parsed["error"]["message"], R"(no route for GET /\xFF)");
  EXPECT_EQ(parsed["error"]["field"], "\xef\xbf\xbd");  // U+FFFD: extra members cannot throw either
  EXPECT_EQ(nlohmann::json::parse(detail::error_body("c", std::string(100000, 'x')))["error"]["message"].get<std::string>().size(),
            detail::kMaxMessageBytes + 3);  // and "..."
}

}  // namespace
}  // namespace kiln::service
