#include "kiln/ipc/exit_status.hpp"

#include <sys/wait.h>

#include <cstring>

namespace kiln::ipc {

ExitStatus ExitStatus::from_wait_status(int status) noexcept {
  if (WIFEXITED(status)) return ExitStatus(Kind::exited, WEXITSTATUS(status), false);
  if (WIFSIGNALED(status)) return ExitStatus(Kind::signaled, WTERMSIG(status), WCOREDUMP(status) != 0);
  return unknown();  // stopped or continued: not an end (kiln never asks for those)
}

std::string ExitStatus::describe() const {
  switch (kind_) {
    case Kind::exited: return "exit status " + std::to_string(code_);
    case Kind::signaled: {
      const char* name = ::sigdescr_np(code_);  // thread-safe, unlike strsignal
      return "signal " + std::to_string(code_) + " (" + (name ? name : "unknown signal") +
             (core_dumped_ ? ", core dumped)" : ")");
    }
    case Kind::unknown: break;
  }
  return "an unknown status (reaped elsewhere: is SIGCHLD ignored?)";
}

}  // namespace kiln::ipc
