// ipc::spawn: starts a program in a child process with fork+exec semantics and returns its owner.
// The child never runs kiln's C++ between the fork and the exec: it is made the way glibc's
// posix_spawn makes one (clone with CLONE_VM | CLONE_VFORK on a private stack, this thread
// suspended until the exec), and between clone and exec it makes only raw system calls. That is
// posix_spawn plus the steps posix_spawn cannot do (a parent-death signal, no ASLR, RLIMIT_AS),
// and it is safe in a process with many threads and with CUDA initialised (CUDA does not survive
// a bare fork).
//
// In the child, in this order: signal handlers reset to default (ignored signals stay ignored,
// as with exec), the parent-death signal, the address-space limit, ADDR_NO_RANDOMIZE, the
// descriptor mapping, every other descriptor above 2 closed, an empty signal mask, execve.
// If any step fails, or exec does, spawn() throws kiln::Error naming the program, the step and
// errno (Errc::invalid_argument when the program cannot be run: missing, not executable, not a
// program; Errc::internal otherwise), and the child has been reaped: a failed start never looks
// like a child that exited 127.
//
// Thread safety: any thread may spawn at any time. The parent-death signal is sent when the
// *thread* that called spawn() exits (Linux ties it to the creating thread, not the process):
// spawn such children from a thread that lives as long as they should.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kiln/ipc/child_process.hpp"

namespace kiln::ipc {

// `parent_fd` (of this process) becomes `child_fd` in the child, without close-on-exec there.
// The parent's descriptor is left as it is (close it after spawn() when the child should own it).
struct FdMapping {
  int child_fd;
  int parent_fd;
};

struct SpawnOptions {
  // The program; run as given (relative to the working directory) unless `search_path` is set and
  // it holds no '/', in which case $PATH (the child's) is searched as execvp would.
  std::filesystem::path program;
  bool search_path = false;
  std::vector<std::string> arguments;  // argv[1...]
  std::string argv0;                   // empty: the program as given

  // Descriptors 0, 1 and 2 are inherited unless mapped; every other one is closed in the child
  // except those mapped here. Targets must be distinct.
  std::vector<FdMapping> fds;

  // The child's environment: this process's (when `inherit_environment`), with `environment`
  // applied on top: a value sets the variable, nullopt removes it.
  bool inherit_environment = true;
  std::map<std::string, std::optional<std::string>> environment;

  // Signal the child gets when the spawning thread ends (PR_SET_PDEATHSIG); none by default.
  std::optional<int> parent_death_signal;
  // Start the program with address-space randomisation off (personality ADDR_NO_RANDOMIZE).
  bool disable_aslr = false;
  // RLIMIT_AS (soft and hard) for the child, bytes; 0: inherit this process's limit.
  std::uint64_t address_space_limit = 0;
};

// Throws kiln::Error as described above; the returned owner kills and reaps the child if it is
// destroyed first.
ChildProcess spawn(const SpawnOptions& options);

}  // namespace kiln::ipc
