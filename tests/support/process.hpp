// Runs a real child process (the kiln CLI, a second test process) and collects its output.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace kiln::testing {

struct ProcessResult {
  int exit_code = -1;  // 128 + signal when killed by a signal
  std::string out;
  std::string err;
};

struct ProcessOptions {
  std::vector<std::pair<std::string, std::string>> set_env;  // added or replaced
  std::vector<std::string> unset_env;
};

ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& options = {});

// The emulator the tests run under ("qemu-aarch64 -L /usr/aarch64-linux-gnu" for the aarch64 cross
// build; run_process starts this build's programs through it), or "" when they run natively.
std::string emulator_command();

// Skips the running test under an emulator, saying why: for what QEMU's user mode cannot do
// (follow kiln's own exec of its worker programs without binfmt_misc, apply a child's rlimits) and
// what a cross build lacks (an arm64 nvJitLink or toolkit beside the host's x86_64 one).
#define KILN_SKIP_UNDER_EMULATOR(why)                                                               \
  if (const std::string kiln_emulator_ = ::kiln::testing::emulator_command(); !kiln_emulator_.empty()) \
  GTEST_SKIP() << "runs under " << kiln_emulator_.substr(0, kiln_emulator_.find(' ')) << ": " << (why)

// The kiln CLI built with the tests.
std::string cli_path();

}  // namespace kiln::testing
