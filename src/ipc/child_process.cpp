#include "kiln/ipc/child_process.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include "kiln/driver/error.hpp"
#include "kiln/ipc/pidfd.hpp"

namespace kiln::ipc {
namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

ChildProcess::ChildProcess(pid_t pid) noexcept : pid_(pid > 0 ? pid : 0) {
  if (pid_ > 0) pidfd_ = open_pidfd(pid_);
}

ChildProcess::~ChildProcess() { kill_and_wait(); }

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, 0)), pidfd_(std::move(other.pidfd_)), status_(std::exchange(other.status_, {})) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    kill_and_wait();
    pid_ = std::exchange(other.pid_, 0);
    pidfd_ = std::move(other.pidfd_);
    status_ = std::exchange(other.status_, {});
  }
  return *this;
}

void ChildProcess::reaped(ExitStatus status) noexcept {
  status_ = status;
  pid_ = 0;
  pidfd_.reset();
}

ExitStatus ChildProcess::wait() {
  if (pid_ <= 0) {
    if (status_) return *status_;
    throw Error(Errc::invalid_handle, "ipc: wait() on a ChildProcess that owns no process");
  }
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid_, &status, 0);
    if (r == pid_) {
      reaped(ExitStatus::from_wait_status(status));
      break;
    }
    if (r < 0 && errno == EINTR) continue;
    reaped(ExitStatus::unknown());  // ECHILD: someone else reaped it
    break;
  }
  return *status_;
}

std::optional<ExitStatus> ChildProcess::try_wait() {
  if (pid_ <= 0) return status_;
  int status = 0;
  pid_t r;
  do r = ::waitpid(pid_, &status, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == 0) return std::nullopt;
  reaped(r == pid_ ? ExitStatus::from_wait_status(status) : ExitStatus::unknown());
  return status_;
}

std::optional<ExitStatus> ChildProcess::wait_for(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto sleep = std::chrono::microseconds(100);
  for (;;) {
    if (auto s = try_wait()) return s;
    const auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) return std::nullopt;
    if (pidfd_) {
      // Readable once the process has ended; exact, no polling loop.
      pollfd p{pidfd_.get(), POLLIN, 0};
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
      ::poll(&p, 1, static_cast<int>(std::min<long long>(ms, 1 << 30)));  // EINTR: loop again
    } else {
      std::this_thread::sleep_for(std::min<Clock::duration>(sleep, left));
      sleep = std::min(sleep * 2, std::chrono::microseconds(10'000));
    }
  }
}

bool ChildProcess::kill(int signal) noexcept {
  if (pid_ <= 0) return false;
#ifdef SYS_pidfd_send_signal
  if (pidfd_) return ::syscall(SYS_pidfd_send_signal, pidfd_.get(), signal, nullptr, 0) == 0;
#endif
  return ::kill(pid_, signal) == 0;
}

ExitStatus ChildProcess::kill_and_wait() noexcept {
  if (pid_ <= 0) return status_.value_or(ExitStatus::unknown());
  kill(SIGKILL);
  try {
    return wait();
  } catch (...) {
    return ExitStatus::unknown();  // wait() throws only for an empty owner, checked above
  }
}

ExitStatus ChildProcess::stop(std::chrono::milliseconds grace) noexcept {
  try {
    if (auto s = wait_for(grace)) return *s;
  } catch (...) {
  }
  return kill_and_wait();
}

}  // namespace kiln::ipc
