// Helpers for tests of the C ABI. These tests link only libkiln.so (kiln::c) and see kiln through
// kiln.h alone, as a C program or a Go binding does.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "kiln/kiln.h"

namespace kiln_c_test {

// A kiln_error that releases what it holds.
struct Error : kiln_error {
  Error() : kiln_error{} {}
  ~Error() { kiln_error_clear(this); }
  Error(const Error&) = delete;
  Error& operator=(const Error&) = delete;
  std::string text() const { return message != nullptr ? message : ""; }
};

// Empty when the NVRTC kiln loads is CUDA `major`.`minor` or newer; otherwise why a test of `what`
// cannot run (through the C ABI's environment report, as the C tests see nothing else).
inline std::string nvrtc_older_than(int major, int minor, const std::string& what) {
  char* text = nullptr;
  Error e;
  if (kiln_environment_json(&text, &e) != KILN_OK) return {};
  const auto report = nlohmann::json::parse(text, nullptr, false);
  kiln_free(text);
  if (report.is_discarded() || !report["nvrtc"]["version"].is_string()) return {};
  const std::string version = report["nvrtc"]["version"];
  int have_major = 0, have_minor = 0;
  if (std::sscanf(version.c_str(), "%d.%d", &have_major, &have_minor) != 2) return {};
  if (have_major * 100 + have_minor >= major * 100 + minor) return {};
  return "NVRTC " + version + " is older than " + std::to_string(major) + "." + std::to_string(minor) + ", which " +
         what + " needs";
}

// Empty when a GPU can be used; otherwise why not (through the C ABI itself).
inline std::string why_no_gpu() {
  Error e;
  int count = 0;
  if (kiln_device_count(&count, &e) != KILN_OK) return "no GPU: " + std::string(e.name ? e.name : "?");
  if (count == 0) return "the driver reports no GPU";
  return {};
}

inline bool gpu_required() {
  const char* v = std::getenv("KILN_REQUIRE_GPU");
  return v != nullptr && std::string(v) == "1";
}

}  // namespace kiln_c_test

#define KILN_C_REQUIRE_GPU()                                                           \
  do {                                                                                 \
    if (std::string why = ::kiln_c_test::why_no_gpu(); !why.empty()) {                 \
      if (::kiln_c_test::gpu_required()) FAIL() << "KILN_REQUIRE_GPU=1 but " << why;   \
      GTEST_SKIP() << why;                                                             \
    }                                                                                  \
  } while (0)

#define EXPECT_CONTAINS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)
