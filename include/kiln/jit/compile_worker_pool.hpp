// jit::CompileWorkerPool: up to N CompileWorker processes, so N compiles run in parallel, each
// killable on its own. Processes start on first need and are reused; a compile waits for an idle
// worker when all N are busy.
//
// Thread safety: every member may be called from any thread. The pool's mutex is held only to
// take or return a worker, never during a compile.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "kiln/jit/compile_worker.hpp"

namespace kiln::jit {

struct CompileWorkerPoolStats {
  std::uint64_t processes = 0;  // workers made so far (each one a process, restarted as needed)
  std::uint64_t starts = 0;     // processes started, restarts included
  std::uint64_t kills = 0;      // processes killed for passing a time limit
  std::uint64_t deaths = 0;     // processes that died during a compile
};

class CompileWorkerPool {
 public:
  // Throws kiln::Error (Errc::invalid_argument) when `processes` is 0, or naming the worker
  // executable when there is none (CompileWorker::default_executable()).
  CompileWorkerPool(CompileWorkerOptions options, unsigned processes);
  CompileWorkerPool(const CompileWorkerPool&) = delete;
  CompileWorkerPool& operator=(const CompileWorkerPool&) = delete;
  ~CompileWorkerPool();

  // CompileWorker::compile on an idle worker (started if needed); same results and errors.
  CompileResult compile(const Program& program, const Target& target, const CompileSettings& settings = {},
                        std::optional<std::chrono::milliseconds> time_limit = std::nullopt);

  unsigned max_processes() const noexcept { return max_processes_; }
  CompileWorkerPoolStats stats() const;

 private:
  CompileWorker& acquire();
  void release(CompileWorker& worker) noexcept;

  CompileWorkerOptions options_;
  const unsigned max_processes_;
  mutable std::mutex mutex_;
  std::condition_variable idle_changed_;
  std::vector<std::unique_ptr<CompileWorker>> workers_;  // grows to max_processes_, never shrinks
  std::vector<CompileWorker*> idle_;
  unsigned starting_ = 0;  // workers being constructed outside the lock
};

}  // namespace kiln::jit
