#include "kiln/ipc/socket_pair.hpp"

#include <sys/socket.h>

#include <cerrno>

#include "ipc/detail/errno_text.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::ipc {

SocketPair SocketPair::create() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    throw Error(Errc::internal, "ipc: socketpair(AF_UNIX, SOCK_STREAM) failed: " + detail::errno_text(errno));
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

}  // namespace kiln::ipc
