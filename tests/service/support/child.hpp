// A child process (kilnd, redis-server) whose stdout is read line by line; killed with SIGKILL if
// the test leaves it running or dies.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

#include "kiln/ipc/pipe.hpp"
#include "kiln/ipc/spawn.hpp"

namespace kiln::testing {

class Child {
 public:
  // `with_stderr`: the child's standard error is read too, interleaved with its output.
  explicit Child(const std::vector<std::string>& argv, bool with_stderr = false) {
    ipc::Pipe out = ipc::Pipe::create();
    ipc::SpawnOptions o;
    o.program = argv.at(0);
    o.arguments.assign(argv.begin() + 1, argv.end());
    o.fds = {{STDOUT_FILENO, out.write.get()}};
    if (with_stderr) o.fds.push_back({STDERR_FILENO, out.write.get()});
    // Dies with the test even when the test crashes: a survivor would hold ctest's output pipe
    // open and keep ctest waiting. (Tests start children from their main thread, which lives as
    // long as the test process.)
    o.parent_death_signal = SIGKILL;
    process_ = ipc::spawn(o);
    out_ = ::fdopen(out.read.release(), "r");
  }
  ~Child() {
    process_.kill_and_wait();
    if (out_) fclose(out_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  // The next line of output, or nullopt at end of output.
  std::optional<std::string> line() {
    char buffer[4096];
    if (!fgets(buffer, sizeof buffer, out_)) return std::nullopt;
    std::string text(buffer);
    if (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
  }
  // Reads lines until one matches; returns its first group.
  std::string wait_for(const std::regex& pattern, std::string& transcript) {
    while (auto text = line()) {
      transcript += *text + "\n";
      std::smatch m;
      if (std::regex_search(*text, m, pattern)) return m.size() > 1 ? m[1].str() : m[0].str();
    }
    return {};
  }
  pid_t pid() const noexcept { return process_.pid(); }
  // SIGKILL, as a crash or the OOM killer would end it: no clean-up runs.
  void kill_now() { process_.kill_and_wait(); }
  int terminate() {
    process_.kill(SIGTERM);
    return process_.wait().shell_code();
  }

 private:
  ipc::ChildProcess process_;
  FILE* out_ = nullptr;
};

}  // namespace kiln::testing
