#include "kiln/jit/compile_worker_pool.hpp"

namespace kiln::jit {

CompileWorkerPool::CompileWorkerPool(CompileWorkerOptions options, unsigned processes)
    : options_(std::move(options)), max_processes_(processes) {
  if (processes == 0) throw Error(Errc::invalid_argument, "a compile worker pool needs at least 1 process, not 0");
  // Resolve the executable once, so a missing worker is reported here rather than at first use.
  if (options_.executable.empty()) options_.executable = CompileWorker::default_executable();
}

CompileWorkerPool::~CompileWorkerPool() = default;

CompileWorker& CompileWorkerPool::acquire() {
  std::unique_lock lock(mutex_);
  idle_changed_.wait(lock, [&] { return !idle_.empty() || workers_.size() + starting_ < max_processes_; });
  if (!idle_.empty()) {
    CompileWorker* w = idle_.back();
    idle_.pop_back();
    return *w;
  }
  ++starting_;
  lock.unlock();
  std::unique_ptr<CompileWorker> worker;
  try {
    worker = std::make_unique<CompileWorker>(options_);  // starting a process: not under the lock
  } catch (...) {
    lock.lock();
    --starting_;
    idle_changed_.notify_one();
    throw;
  }
  lock.lock();
  --starting_;
  workers_.push_back(std::move(worker));
  return *workers_.back();
}

void CompileWorkerPool::release(CompileWorker& worker) noexcept {
  {
    std::lock_guard lock(mutex_);
    idle_.push_back(&worker);
  }
  idle_changed_.notify_one();
}

CompileResult CompileWorkerPool::compile(const Program& program, const Target& target,
                                         const CompileSettings& settings,
                                         std::optional<std::chrono::milliseconds> time_limit) {
  CompileWorker& worker = acquire();
  struct Lease {
    CompileWorkerPool& pool;
    CompileWorker& worker;
    ~Lease() { pool.release(worker); }
  } lease{*this, worker};
  return worker.compile(program, target, settings, time_limit);
}

CompileWorkerPoolStats CompileWorkerPool::stats() const {
  std::lock_guard lock(mutex_);
  CompileWorkerPoolStats s;
  s.processes = workers_.size();
  for (const auto& w : workers_) {
    s.starts += w->starts();
    s.kills += w->kills();
    s.deaths += w->deaths();
  }
  return s;
}

}  // namespace kiln::jit
