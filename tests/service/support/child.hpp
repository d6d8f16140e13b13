// A child process (kilnd, redis-server) whose stdout is read line by line; killed with SIGKILL if
// the test leaves it running or dies.
#pragma once

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

namespace kiln::testing {

class Child {
 public:
  // `with_stderr`: the child's standard error is read too, interleaved with its output.
  explicit Child(const std::vector<std::string>& argv, bool with_stderr = false) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ == 0) {
      // Dies with the test even when the test crashes: a survivor would hold ctest's output pipe
      // open and keep ctest waiting.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      dup2(fds[1], STDOUT_FILENO);
      if (with_stderr) dup2(fds[1], STDERR_FILENO);
      close(fds[0]);
      close(fds[1]);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(fds[1]);
    out_ = fdopen(fds[0], "r");
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_) fclose(out_);
  }
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
  pid_t pid() const noexcept { return pid_; }
  // SIGKILL, as a crash or the OOM killer would end it: no clean-up runs.
  void kill_now() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  int terminate() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
};

}  // namespace kiln::testing
