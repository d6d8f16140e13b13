#include "kiln/ipc/pipe.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "ipc/detail/errno_text.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::ipc {

Pipe Pipe::create() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw Error(Errc::internal, "ipc: pipe2 failed: " + detail::errno_text(errno));
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

}  // namespace kiln::ipc
