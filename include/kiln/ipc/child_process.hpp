// ipc::ChildProcess: an owned child process (its pid, and a pidfd where the kernel has them).
// Move-only. The owner reaps the child exactly once; destroying an owner whose child has not been
// reaped kills it (SIGKILL) and reaps it, so kiln leaves no zombie and no orphan behind. Once
// reaped, the pid is forgotten: kill() never signals a process that merely reused the number
// (with a pidfd the kernel guarantees it; without one, the pid is no longer used after the reap).
//
// A child whose status someone else collected (the host ignores SIGCHLD, or called waitpid(-1))
// reads as ExitStatus::unknown() instead of failing.
//
// Thread safety: one thread at a time per ChildProcess (callers that share one, like the compile
// worker, hold their own mutex). Destruction never throws.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>

#include "kiln/ipc/exit_status.hpp"
#include "kiln/ipc/unique_fd.hpp"

namespace kiln::ipc {

class ChildProcess {
 public:
  ChildProcess() noexcept = default;
  // Takes ownership of a child of this process (normally spawn() makes these).
  explicit ChildProcess(pid_t pid) noexcept;
  ~ChildProcess();  // kill_and_wait() if still running

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;  // kills and reaps the child it held
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // The child's pid; 0 when empty or once reaped.
  pid_t pid() const noexcept { return pid_; }
  // True while a child is owned and not yet reaped (it may have exited: try_wait() says).
  bool running() const noexcept { return pid_ > 0; }
  explicit operator bool() const noexcept { return running(); }
  // How the child ended, once reaped (by wait, try_wait, wait_for or kill_and_wait).
  const std::optional<ExitStatus>& status() const noexcept { return status_; }

  // Blocks until the child ends and reaps it (EINTR is retried). Returns the status recorded
  // earlier when it was reaped already. Throws kiln::Error (Errc::invalid_handle) when empty.
  ExitStatus wait();
  // Reaps the child if it has ended; nullopt while it runs. Never blocks.
  std::optional<ExitStatus> try_wait();
  // Waits at most `timeout` (poll on the pidfd, else a short sleep loop); nullopt if still running.
  std::optional<ExitStatus> wait_for(std::chrono::milliseconds timeout);
  // Sends `signal`. False when there is nothing to signal (empty, reaped, or already gone).
  bool kill(int signal) noexcept;
  // SIGKILL, then waits for it. A no-op returning the recorded status when already reaped.
  ExitStatus kill_and_wait() noexcept;
  // Lets the child exit by itself for up to `grace` (after the caller asked it to: closed its
  // socket, sent a shutdown message), then kills it. Returns how it ended.
  ExitStatus stop(std::chrono::milliseconds grace) noexcept;

 private:
  void reaped(ExitStatus status) noexcept;
  pid_t pid_ = 0;
  UniqueFd pidfd_;  // invalid where pidfd_open is not available
  std::optional<ExitStatus> status_;
};

}  // namespace kiln::ipc
