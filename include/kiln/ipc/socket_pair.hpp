// ipc::SocketPair: a connected pair of Unix stream sockets (socketpair), both ends close-on-exec.
// One end stays in this process, the other is mapped into a child with SpawnOptions::fds (a
// mapped descriptor loses close-on-exec in the child only), and the parent closes its copy of it.
//
// Thread safety: a plain value.
#pragma once

#include "kiln/ipc/unique_fd.hpp"

namespace kiln::ipc {

struct SocketPair {
  UniqueFd first;
  UniqueFd second;

  // Throws kiln::Error (with errno) when the kernel refuses: out of descriptors.
  static SocketPair create();
};

}  // namespace kiln::ipc
