// ipc::ExitStatus: how a child process ended, as waitpid reported it, and in words ("exit status
// 3", "signal 9 (Killed)") for error messages.
//
// Thread safety: a plain value.
#pragma once

#include <string>

namespace kiln::ipc {

class ExitStatus {
 public:
  enum class Kind {
    exited,    // returned from main or called exit/_exit: code() is the status (0-255)
    signaled,  // ended by a signal: code() is its number
    unknown,   // reaped by someone else (waitpid: ECHILD, e.g. SIGCHLD is ignored): nothing known
  };

  // From the status word waitpid filled in.
  static ExitStatus from_wait_status(int status) noexcept;
  static ExitStatus exited_with(int code) noexcept { return ExitStatus(Kind::exited, code, false); }
  static ExitStatus killed_by(int signal) noexcept { return ExitStatus(Kind::signaled, signal, false); }
  static ExitStatus unknown() noexcept { return ExitStatus(Kind::unknown, 0, false); }

  Kind kind() const noexcept { return kind_; }
  bool exited() const noexcept { return kind_ == Kind::exited; }
  bool signaled() const noexcept { return kind_ == Kind::signaled; }
  bool success() const noexcept { return exited() && code_ == 0; }
  int exit_code() const noexcept { return exited() ? code_ : -1; }
  int signal() const noexcept { return signaled() ? code_ : 0; }
  bool core_dumped() const noexcept { return core_dumped_; }
  // A shell's convention: the exit status, or 128 + the signal.
  int shell_code() const noexcept { return signaled() ? 128 + code_ : exited() ? code_ : -1; }

  // "exit status 0", "signal 6 (Aborted)", "signal 11 (Segmentation fault, core dumped)",
  // "an unknown status (reaped elsewhere)".
  std::string describe() const;

  friend bool operator==(const ExitStatus&, const ExitStatus&) = default;

 private:
  ExitStatus(Kind kind, int code, bool core) noexcept : kind_(kind), code_(code), core_dumped_(core) {}
  Kind kind_;
  int code_;
  bool core_dumped_;
};

}  // namespace kiln::ipc
