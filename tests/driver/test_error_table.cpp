// Checks kiln::error_table() against the CUDA toolkit headers it describes: every CUresult of
// cuda.h and every nvrtcResult of nvrtc.h must be present with the same number, and a CUresult is
// sticky exactly when cuda.h documents that the process must be relaunched after it.
//
// The headers are parsed as text (they are not included), so the table's literals are checked
// independently of the compiler seeing the same enums.
#include <cuda.h>
#include <gtest/gtest.h>

#include <cctype>
#include <cstddef>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/driver/error.hpp"
#include "kiln/driver/nvjitlink_api.hpp"  // KILN_HAVE_NVJITLINK_H

#ifndef KILN_CUDA_INCLUDE_DIR
#error "Define KILN_CUDA_INCLUDE_DIR as a string literal naming the CUDA toolkit's include folder"
#endif

namespace {

using kiln::Domain;
using kiln::ErrorInfo;

constexpr std::string_view kRelaunchPhrase = "process must be terminated and relaunched";

struct Enumerator {
  std::string name;
  long long value = 0;
  std::string comment;  // the comment block right before the enumerator, whitespace collapsed
};

// `file` in the toolkit's include folder, or an absolute path.
std::string read_header(const std::string& file) {
  const std::string path = file.starts_with('/') ? file : std::string(KILN_CUDA_INCLUDE_DIR) + "/" + file;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "cannot open " << path << " (KILN_CUDA_INCLUDE_DIR is wrong?)";
    return {};
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

bool is_ident_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool is_ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// Strips the comment's leading '*' decoration from each line and collapses all whitespace, so a
// phrase wrapped over several lines is found by a plain substring search.
std::string normalise_comment(std::string_view raw) {
  std::string flat;
  std::size_t line_start = 0;
  while (line_start <= raw.size()) {
    std::size_t line_end = raw.find('\n', line_start);
    if (line_end == std::string_view::npos) line_end = raw.size();
    std::string_view line = raw.substr(line_start, line_end - line_start);
    while (!line.empty() && (is_space(line.front()) || line.front() == '*')) line.remove_prefix(1);
    for (char c : line) {
      if (is_space(c)) {
        if (!flat.empty() && flat.back() != ' ') flat += ' ';
      } else {
        flat += c;
      }
    }
    if (!flat.empty() && flat.back() != ' ') flat += ' ';
    line_start = line_end + 1;
  }
  while (!flat.empty() && flat.back() == ' ') flat.pop_back();
  return flat;
}

// The text between the braces of `typedef enum [tag] { ... } type_name;`, or empty if not found.
std::string enum_body(const std::string& text, std::string_view type_name) {
  for (std::size_t close = text.find('}'); close != std::string::npos;
       close = text.find('}', close + 1)) {
    std::size_t pos = close + 1;
    while (pos < text.size() && is_space(text[pos])) ++pos;
    if (text.compare(pos, type_name.size(), type_name) != 0) continue;
    pos += type_name.size();
    while (pos < text.size() && is_space(text[pos])) ++pos;
    if (pos >= text.size() || text[pos] != ';') continue;
    const std::size_t typedef_pos = text.rfind("typedef enum", close);
    if (typedef_pos == std::string::npos) return {};
    const std::size_t open = text.find('{', typedef_pos);
    if (open == std::string::npos || open > close) return {};
    return text.substr(open + 1, close - open - 1);
  }
  return {};
}

// Parses the enumerators of an enum body: `NAME = value` or bare `NAME` (previous value + 1,
// starting at 0). Values must be integer literals, which is all these headers use.
std::vector<Enumerator> parse_enumerators(const std::string& body) {
  std::vector<Enumerator> result;
  std::string comment;
  long long next_value = 0;
  std::size_t pos = 0;
  while (pos < body.size()) {
    if (body.compare(pos, 2, "/*") == 0) {
      const std::size_t end = body.find("*/", pos + 2);
      if (end == std::string::npos) {
        ADD_FAILURE() << "unterminated comment in enum body";
        break;
      }
      comment = normalise_comment(std::string_view(body).substr(pos + 2, end - pos - 2));
      pos = end + 2;
    } else if (body.compare(pos, 2, "//") == 0 || body[pos] == '#') {
      pos = body.find('\n', pos);
      if (pos == std::string::npos) break;
    } else if (is_ident_start(body[pos])) {
      Enumerator e;
      while (pos < body.size() && is_ident_char(body[pos])) e.name += body[pos++];
      while (pos < body.size() && is_space(body[pos])) ++pos;
      if (pos < body.size() && body[pos] == '=') {
        ++pos;
        const std::size_t end = body.find_first_of(",", pos);
        std::string literal = body.substr(pos, end == std::string::npos ? end : end - pos);
        // Drop a trailing comment or whitespace after the literal.
        if (const std::size_t cut = literal.find('/'); cut != std::string::npos)
          literal.resize(cut);
        std::size_t used = 0;
        try {
          e.value = std::stoll(literal, &used, 0);
        } catch (const std::exception&) {
          used = 0;
        }
        while (used < literal.size() && is_space(literal[used])) ++used;
        if (used == 0 || used != literal.size()) {
          ADD_FAILURE() << "cannot read the value of " << e.name << ": '" << literal << "'";
        }
        pos = end == std::string::npos ? body.size() : end;
      } else {
        e.value = next_value;
      }
      next_value = e.value + 1;
      e.comment = std::move(comment);
      comment.clear();
      result.push_back(std::move(e));
    } else {
      ++pos;
    }
  }
  return result;
}

std::vector<Enumerator> parse_header_enum(const std::string& file, std::string_view type_name) {
  const std::string text = read_header(file);
  if (text.empty()) return {};
  const std::string body = enum_body(text, type_name);
  if (body.empty()) {
    ADD_FAILURE() << "no `typedef enum { ... } " << type_name << ";` in " << file;
    return {};
  }
  return parse_enumerators(body);
}

const ErrorInfo* find_in_table(Domain domain, std::string_view name) {
  for (const ErrorInfo& info : kiln::error_table()) {
    if (info.domain == domain && info.name == name) return &info;
  }
  return nullptr;
}

const ErrorInfo* find_in_table(Domain domain, int code) {
  for (const ErrorInfo& info : kiln::error_table()) {
    if (info.domain == domain && info.code == code) return &info;
  }
  return nullptr;
}

std::string_view domain_name(Domain domain) {
  switch (domain) {
    case Domain::driver:
      return "driver";
    case Domain::nvrtc:
      return "nvrtc";
    case Domain::nvml:
      return "nvml";
    case Domain::kiln:
      return "kiln";
    case Domain::nvjitlink:
      return "nvjitlink";
  }
  return "?";
}

// Every enumerator must be in the table under `domain` with the header's number.
void expect_all_in_table(const std::vector<Enumerator>& enumerators, Domain domain,
                         std::string_view header) {
  for (const Enumerator& e : enumerators) {
    const ErrorInfo* info = find_in_table(domain, e.name);
    if (info == nullptr) {
      ADD_FAILURE() << e.name << " = " << e.value << " (" << header
                    << ") is missing from error_table()";
    } else if (info->code != e.value) {
      ADD_FAILURE() << e.name << " has code " << info->code << " in error_table(), but " << header
                    << " says " << e.value;
    }
  }
}

long long value_of(const std::vector<Enumerator>& enumerators, std::string_view name) {
  for (const Enumerator& e : enumerators) {
    if (e.name == name) return e.value;
  }
  return -1;
}

// Fewer than this many values means the parser is broken: CUDA 11.8's cuda.h has 90 CUresults and
// 12 nvrtcResults, CUDA 12 and 13 more.
constexpr std::size_t kMinCUresults = CUDA_VERSION >= 12000 ? 91 : 90;
constexpr std::size_t kMinNvrtcResults = CUDA_VERSION >= 12000 ? 15 : 12;

// The nvJitLink.h kiln was built with; headers without one (CUDA 11.8's) build with kiln's own
// declarations, which then stand in for it.
std::string nvjitlink_header() {
#if KILN_HAVE_NVJITLINK_H
  return "nvJitLink.h";
#else
  return std::string(KILN_SOURCE_DIR) + "/include/kiln/driver/nvjitlink_compat.hpp";
#endif
}

TEST(ErrorTable, HasEveryCUresultOfCudaHeader) {
  const std::vector<Enumerator> results = parse_header_enum("cuda.h", "CUresult");
  ASSERT_GE(results.size(), kMinCUresults) << "the cuda.h parser found too few CUresult values";
  // Anchors that would expose a parser that reads names or values wrongly.
  EXPECT_EQ(value_of(results, "CUDA_SUCCESS"), 0);
  EXPECT_EQ(value_of(results, "CUDA_ERROR_ILLEGAL_ADDRESS"), 700);
  EXPECT_EQ(value_of(results, "CUDA_ERROR_UNKNOWN"), 999);
  expect_all_in_table(results, Domain::driver, "cuda.h");
}

TEST(ErrorTable, HasEveryNvrtcResultOfNvrtcHeader) {
  const std::vector<Enumerator> results = parse_header_enum("nvrtc.h", "nvrtcResult");
  ASSERT_GE(results.size(), kMinNvrtcResults) << "the nvrtc.h parser found too few nvrtcResult values";
  EXPECT_EQ(value_of(results, "NVRTC_SUCCESS"), 0);
  EXPECT_EQ(value_of(results, "NVRTC_ERROR_COMPILATION"), 6);
  expect_all_in_table(results, Domain::nvrtc, "nvrtc.h");
}

TEST(ErrorTable, HasEveryNvJitLinkResultOfNvJitLinkHeader) {
  const std::vector<Enumerator> results = parse_header_enum(nvjitlink_header(), "nvJitLinkResult");
  ASSERT_GE(results.size(), 15u) << "the nvJitLink.h parser found too few nvJitLinkResult values";
  EXPECT_EQ(value_of(results, "NVJITLINK_SUCCESS"), 0);
  EXPECT_EQ(value_of(results, "NVJITLINK_ERROR_PTX_COMPILE"), 4);
  expect_all_in_table(results, Domain::nvjitlink, nvjitlink_header());
}

// What a kiln built against headers without nvJitLink.h uses (nvjitlink_compat.hpp) is the header's
// API: the same names with the same values.
TEST(NvJitLinkCompat, DeclaresTheValuesOfNvJitLinkHeader) {
#if !KILN_HAVE_NVJITLINK_H
  GTEST_SKIP() << "built against CUDA " << CUDA_VERSION / 1000 << "." << CUDA_VERSION % 1000 / 10
               << " headers, which have no nvJitLink.h to compare kiln's declarations with (nvJitLink came "
                  "with CUDA 12.0); a build against 12.0 or later checks them";
#endif
  const std::string compat = std::string(KILN_SOURCE_DIR) + "/include/kiln/driver/nvjitlink_compat.hpp";
  for (std::string_view type : {"nvJitLinkResult", "nvJitLinkInputType"}) {
    SCOPED_TRACE(std::string(type));
    const std::vector<Enumerator> header = parse_header_enum("nvJitLink.h", type);
    const std::vector<Enumerator> own = parse_header_enum(compat, type);
    ASSERT_GE(header.size(), 9u);
    ASSERT_EQ(own.size(), header.size()) << "nvjitlink_compat.hpp and nvJitLink.h differ in length";
    for (std::size_t i = 0; i < header.size(); ++i) {
      EXPECT_EQ(own[i].name, header[i].name);
      EXPECT_EQ(own[i].value, header[i].value) << header[i].name;
    }
  }
}

TEST(ErrorTable, EntriesAreCompleteAndUnique) {
  const auto table = kiln::error_table();
  ASSERT_FALSE(table.empty());
  std::map<std::pair<Domain, int>, std::string_view> by_code;
  std::set<std::string_view> names;
  for (const ErrorInfo& info : table) {
    SCOPED_TRACE(std::string(info.name) + " (" + std::string(domain_name(info.domain)) + ":" +
                 std::to_string(info.code) + ")");
    EXPECT_FALSE(info.name.empty());
    EXPECT_FALSE(info.description.empty());
    EXPECT_FALSE(info.hint.empty());
    const auto [it, inserted] = by_code.emplace(std::pair(info.domain, info.code), info.name);
    EXPECT_TRUE(inserted) << "same domain and code as " << it->second;
    EXPECT_TRUE(names.insert(info.name).second) << "duplicate name";
    if (info.domain != Domain::driver) {
      EXPECT_FALSE(info.sticky) << "only CUresults are sticky";
    }
  }
}

TEST(ErrorTable, HasEveryKilnErrc) {
  for (int code = 1; code <= static_cast<int>(kiln::Errc::link_failed); ++code) {
    const ErrorInfo* info = find_in_table(Domain::kiln, code);
    if (info == nullptr) {
      ADD_FAILURE() << "kiln::Errc value " << code << " has no entry in error_table()";
      continue;
    }
    EXPECT_EQ(info->name.substr(0, 11), "KILN_ERROR_") << info->name;
  }
}

TEST(ErrorTable, StickyExamples) {
  const ErrorInfo* illegal_address = find_in_table(Domain::driver, "CUDA_ERROR_ILLEGAL_ADDRESS");
  const ErrorInfo* out_of_memory = find_in_table(Domain::driver, "CUDA_ERROR_OUT_OF_MEMORY");
  const ErrorInfo* invalid_value = find_in_table(Domain::driver, "CUDA_ERROR_INVALID_VALUE");
  ASSERT_NE(illegal_address, nullptr);
  ASSERT_NE(out_of_memory, nullptr);
  ASSERT_NE(invalid_value, nullptr);
  EXPECT_TRUE(illegal_address->sticky);
  EXPECT_FALSE(out_of_memory->sticky);
  EXPECT_FALSE(invalid_value->sticky);
}

// cuda.h documents the codes that poison the process with "... To continue using CUDA, the process
// must be terminated and relaunched." Those, and only those, are sticky.
TEST(ErrorTable, StickyMatchesCudaHeaderDocumentation) {
  const std::vector<Enumerator> results = parse_header_enum("cuda.h", "CUresult");
  ASSERT_GE(results.size(), kMinCUresults);
  std::set<std::string_view> documented_sticky;
  for (const Enumerator& e : results) {
    if (e.comment.find(kRelaunchPhrase) != std::string::npos) documented_sticky.insert(e.name);
  }
  // ILLEGAL_ADDRESS, LAUNCH_FAILED and friends: a parser that misses the comments finds none.
  ASSERT_GE(documented_sticky.size(), 8u) << "the cuda.h comment parser looks broken";

  for (const Enumerator& e : results) {
    const ErrorInfo* info = find_in_table(Domain::driver, e.name);
    if (info == nullptr) continue;  // reported by HasEveryCUresultOfCudaHeader
    const bool documented = documented_sticky.count(e.name) != 0;
    EXPECT_EQ(info->sticky, documented)
        << e.name
        << (documented ? " is documented as needing a relaunch but is not sticky"
                       : " is sticky but cuda.h does not say the process must be "
                         "terminated and relaunched");
  }
  // The table describes CUDA 13.0's CUresults; older headers (11.8's) lack the newest of them.
  if (CUDA_VERSION < 13000) return;
  for (const ErrorInfo& info : kiln::error_table()) {
    if (info.domain != Domain::driver || !info.sticky) continue;
    EXPECT_NE(value_of(results, info.name), -1)
        << info.name << " is sticky but is not a CUresult of cuda.h";
  }
}

}  // namespace
