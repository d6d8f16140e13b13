// Helpers shared by the ipc tests: run a shell command with its output captured, read a pipe to
// its end, and look at a process in /proc.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <ostream>
#include <optional>
#include <string>

#include "kiln/driver/error.hpp"
#include "kiln/ipc/pipe.hpp"
#include "kiln/ipc/spawn.hpp"
#include "support/error_message.hpp"

namespace kiln::ipc {
inline void PrintTo(const ExitStatus& s, std::ostream* os) { *os << s.describe(); }
}  // namespace kiln::ipc

namespace kiln::ipc::testing {

inline bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

// Everything up to end-of-file (every writer closed).
inline std::string read_all(const UniqueFd& fd) {
  std::string out;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n > 0) out.append(buffer, static_cast<std::size_t>(n));
    else if (n == 0 || errno != EINTR) break;
  }
  return out;
}

// The one-letter state of /proc/<pid>/stat ('Z': zombie), nullopt when there is no such process.
inline std::optional<char> process_state(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return std::nullopt;
  const auto close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return std::nullopt;
  return line[close + 2];
}

struct Output {
  ExitStatus status = ExitStatus::unknown();
  std::string out;
};

// Runs /bin/sh -c `script` with standard output captured; `options` adds the rest.
inline Output shell(const std::string& script, SpawnOptions options = {}) {
  Pipe out = Pipe::create();
  options.program = "/bin/sh";
  options.arguments = {"-c", script};
  options.fds.push_back({1, out.write.get()});
  ChildProcess child = spawn(options);
  out.write.reset();  // the child holds the only writer now
  Output r;
  r.out = read_all(out.read);
  r.status = child.wait();
  return r;
}

using kiln::testing::error_of;

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace kiln::ipc::testing
