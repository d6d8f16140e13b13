// jit::CompileWorker: one long-lived child process (kiln's small worker binary, started with
// ipc::spawn: fork+exec semantics, never a bare fork) that runs NVRTC compiles sent to it over an
// ipc::Channel. It exists because
// NVRTC cannot be cancelled: a compile with a time limit that runs past it is ended by killing the
// process, and the next compile starts a new one. A long-lived worker also keeps NVRTC's automatic
// precompiled-header heap between programs, and, started with `disable_aslr`, can load PCH files
// that another such process wrote (NVRTC otherwise ignores them: warning 20282). Turning off
// address-space randomisation weakens that process against memory-corruption exploits: it is
// opt-in, and docs/JIT.md says when it is acceptable.
//
// Results are identical to jit::compile() in this process: the same function runs in the worker
// and its CompileResult (or kiln::Error) is sent back whole.
//
// Thread safety: every member may be called from any thread. One worker runs one compile at a
// time: concurrent compile() calls on one worker queue on its own mutex (use CompileWorkerPool for
// parallel compiles). The destructor must not race with compile() calls.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "kiln/ipc/channel.hpp"
#include "kiln/ipc/child_process.hpp"
#include "kiln/jit/compiler.hpp"
#include "kiln/jit/program.hpp"
#include "kiln/jit/target.hpp"

namespace kiln::jit {

struct CompileWorkerOptions {
  // The worker program; empty: CompileWorker::default_executable().
  std::filesystem::path executable;
  // Arguments given before "--fd <n>", for a program that serves as its own worker (its main
  // then calls serve_compile_worker()).
  std::vector<std::string> arguments;
  // Start the worker with personality(ADDR_NO_RANDOMIZE) so PCH files written by other no-ASLR
  // workers load. Security cost: see docs/JIT.md. Refused with an error if the kernel (or a
  // seccomp profile) does not let it take effect.
  bool disable_aslr = false;
  // How long a new process may take to report ready (NVRTC loaded and warmed up) before it is
  // killed and the start fails.
  std::chrono::milliseconds start_timeout{30'000};
  // The process's address-space limit (RLIMIT_AS), 0: none. NVRTC reports a compile that needs
  // more as "catastrophic error: out of memory" and the worker lives on. A CUB kernel needs about
  // 300 MiB, the worker itself about 150 MiB.
  std::uint64_t memory_limit_bytes = 0;
};

class CompileWorker {
 public:
  // Starts the process. Throws kiln::Error naming the executable when it is missing, cannot run
  // (the path and errno of the failed exec), speaks another protocol version, or cannot have ASLR
  // disabled as asked.
  explicit CompileWorker(CompileWorkerOptions options = {});
  ~CompileWorker();  // closes the socket, lets the process exit, kills it after a grace period
  CompileWorker(const CompileWorker&) = delete;
  CompileWorker& operator=(const CompileWorker&) = delete;

  // jit::compile(program, target, settings) in the worker. A process that died since the last
  // call is replaced first. Throws kiln::Error:
  //   Errc::timeout  — the compile ran past `time_limit`; the process was killed (the next call
  //                    starts a new one);
  //   Errc::internal — the process died during the compile (the message says of which signal);
  //   whatever jit::compile threw in the worker (same domain, code and detail).
  CompileResult compile(const Program& program, const Target& target, const CompileSettings& settings = {},
                        std::optional<std::chrono::milliseconds> time_limit = std::nullopt);

  pid_t pid() const noexcept { return pid_.load(std::memory_order_relaxed); }  // 0: none running
  bool compiling() const noexcept { return compiling_.load(std::memory_order_relaxed); }
  std::uint64_t starts() const noexcept { return starts_.load(std::memory_order_relaxed); }
  std::uint64_t kills() const noexcept { return kills_.load(std::memory_order_relaxed); }  // time limits
  std::uint64_t deaths() const noexcept { return deaths_.load(std::memory_order_relaxed); }  // crashes
  // True when the running worker reported that its own address space is not randomised.
  bool aslr_disabled() const noexcept { return aslr_disabled_.load(std::memory_order_relaxed); }
  const CompileWorkerOptions& options() const noexcept { return options_; }

  // False in builds with AddressSanitizer, whose shadow memory needs terabytes of address space:
  // there memory_limit_bytes is not applied.
  static bool memory_limits_apply() noexcept;

  // $KILN_COMPILE_WORKER, else the kiln-compile-worker built with this kiln, else the installed
  // one (<prefix>/libexec/kiln/kiln-compile-worker). Throws kiln::Error listing every place tried.
  static std::filesystem::path default_executable();

 private:
  void start_locked();
  void stop_locked(bool kill_now) noexcept;
  // Reaps the process if it has exited; returns a description of how ("signal 9 (Killed)").
  std::optional<std::string> reap_if_exited_locked() noexcept;
  std::string wait_description_locked() noexcept;

  const CompileWorkerOptions options_;
  std::filesystem::path executable_;
  std::mutex mutex_;  // one compile at a time; guards channel_ and process_
  ipc::Channel channel_;
  ipc::ChildProcess process_;
  std::atomic<pid_t> pid_{0};  // process_.pid(), readable without the mutex
  std::atomic<bool> compiling_{false}, aslr_disabled_{false};
  std::atomic<std::uint64_t> starts_{0}, kills_{0}, deaths_{0};
};

// The worker's side: loads NVRTC and runs one empty compile (NVRTC's first compile in a process
// pays for its own start-up, which must not count against a time limit), reports ready, then
// answers compile requests on the connected socket `fd` (which it takes ownership of).
// kiln-compile-worker's main is this call; it returns the process's exit status once the other end
// closes the socket: 0, or 1 (a reply could not be sent), 2 (a broken or unexpected frame),
// 3 (out of memory).
// A no-ASLR worker instead ends there with _exit(0), without exit handlers: NVRTC deletes the
// automatic PCH files a process created when it exits normally, and the next no-ASLR worker should
// find them.
int serve_compile_worker(int fd) noexcept;

}  // namespace kiln::jit
