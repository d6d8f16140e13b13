// ipc::Pipe: the two ends of a pipe (pipe2), both close-on-exec: a child's standard output, or a
// descriptor a test hands to a child to write through.
//
// Thread safety: a plain value.
#pragma once

#include "kiln/ipc/unique_fd.hpp"

namespace kiln::ipc {

struct Pipe {
  UniqueFd read;
  UniqueFd write;

  // Throws kiln::Error (with errno) when the kernel refuses.
  static Pipe create();
};

}  // namespace kiln::ipc
