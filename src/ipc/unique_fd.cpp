#include "kiln/ipc/unique_fd.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "ipc/detail/errno_text.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::ipc {

void UniqueFd::reset(int fd) noexcept {
  const int old = std::exchange(fd_, fd < 0 ? -1 : fd);
  if (old >= 0 && old != fd_) ::close(old);
}

UniqueFd UniqueFd::duplicate() const {
  if (fd_ < 0) throw Error(Errc::invalid_handle, "ipc: duplicate() of an empty UniqueFd");
  const int copy = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (copy < 0)
    throw Error(Errc::internal, "ipc: cannot duplicate descriptor " + std::to_string(fd_) + ": " +
                                    detail::errno_text(errno));
  return UniqueFd(copy);
}

}  // namespace kiln::ipc
