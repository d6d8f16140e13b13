// A process descriptor (Linux pidfd): names one process for as long as it is held, so a process
// that ended is never confused with a later one given the same pid. Readable once the process ends.
#pragma once

#include <sys/types.h>

#include "kiln/ipc/unique_fd.hpp"

namespace kiln::ipc {

// A pidfd for `pid` (any process, not only a child); empty when there is no such process or the
// kernel lacks pidfd_open (Linux 5.3).
UniqueFd open_pidfd(pid_t pid) noexcept;

// Whether the process `pidfd` names has ended (false for an empty descriptor).
bool process_ended(const UniqueFd& pidfd) noexcept;

}  // namespace kiln::ipc
