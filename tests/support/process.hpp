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

// The kiln CLI built with the tests.
std::string cli_path();

}  // namespace kiln::testing
