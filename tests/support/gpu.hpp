// GPU tests skip, saying why, where no driver or GPU is found. Under KILN_REQUIRE_GPU=1 (set by
// scripts/gpu-check) the same condition fails the test instead, so a GPU run cannot pass by skipping.
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace kiln::testing {

// Empty when a driver is loaded and cuInit found at least one GPU; otherwise why not.
std::string why_no_gpu();
bool gpu_required();

}  // namespace kiln::testing

#define KILN_REQUIRE_GPU()                                                              \
  do {                                                                                  \
    if (std::string why = ::kiln::testing::why_no_gpu(); !why.empty()) {                \
      if (::kiln::testing::gpu_required()) FAIL() << "KILN_REQUIRE_GPU=1 but " << why;  \
      GTEST_SKIP() << why;                                                              \
    }                                                                                   \
  } while (0)
