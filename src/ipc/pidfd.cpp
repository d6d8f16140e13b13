#include "kiln/ipc/pidfd.hpp"

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace kiln::ipc {

UniqueFd open_pidfd(pid_t pid) noexcept {
#ifdef SYS_pidfd_open
  if (pid <= 0) return UniqueFd();
  const long fd = ::syscall(SYS_pidfd_open, pid, 0);  // close-on-exec by definition
  return UniqueFd(fd < 0 ? -1 : static_cast<int>(fd));
#else
  (void)pid;
  return UniqueFd();
#endif
}

bool process_ended(const UniqueFd& pidfd) noexcept {
  if (!pidfd) return false;
  pollfd p{pidfd.get(), POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

}  // namespace kiln::ipc
