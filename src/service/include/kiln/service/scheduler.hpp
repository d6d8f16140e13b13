// Scheduler: accepts launch jobs, places them on a GPU, queues them, and runs them on a fixed set of
// dispatcher threads per GPU that call GpuBackend::launch. It keeps every job's state so callers can
// wait for it (synchronous launches, long polls) and reads it back by tenant only.
//
// Placement (place()): an explicit device or the device of the job's buffers wins; otherwise, among
// GPUs with a worker up and the circuit closed, topology::choose when a Topology was given and
// several qualify (load = the scheduler's jobs per GPU), else the least loaded. Ordering is the
// queue's (InProcessQueue: priority with aging, round-robin between tenants). A job whose deadline
// passes while it waits ends as timed_out without running.
//
// Memory admission (admit_buffer()): a new buffer that does not fit the device's free memory is
// refused before anything is allocated, with memory::OutOfMemoryError's picture.
//
// Thread safety: every member may be called from any thread at once. Job records live in 16 shards
// with their own mutexes; each record has its own mutex and condition variable for waiters.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "kiln/service/gpu_backend.hpp"
#include "kiln/service/in_process_queue.hpp"
#include "kiln/service/metrics.hpp"

namespace kiln::topology {
class Topology;
}

namespace kiln::service {

enum class JobState : std::uint8_t { queued, running, finished };

struct JobSnapshot {
  JobId id = 0;
  std::string tenant;
  std::string request_id;  // of the request that launched it (X-Request-Id)
  std::string package;     // a repository package's launch: the package and the version it runs
  std::uint64_t package_version = 0;
  Priority priority = Priority::normal;
  int device = 0;
  JobState state = JobState::queued;
  JobOutcome outcome = JobOutcome::completed;  // meaningful when state is finished
  LaunchResult result;                          // meaningful when state is finished
  double queued_ms = 0;                         // accepted until a dispatcher took it (or now)
  double total_ms = 0;                          // accepted until finished (or now)
};

struct SchedulerOptions {
  int dispatchers_per_device = 2;
  std::chrono::milliseconds lease_grace{5000};  // a claim's lease: time to the deadline plus this
  std::chrono::seconds job_retention{600};      // finished jobs stay readable this long
  std::map<int, int> dispatchers_by_device{};   // per GPU ordinal, overriding dispatchers_per_device
};

enum class SubmitStatus : std::uint8_t { accepted, queue_full, tenant_full, shutting_down };

struct SubmitResult {
  SubmitStatus status = SubmitStatus::accepted;
  JobId id = 0;
  std::string message;  // why it was refused
};

class Scheduler {
 public:
  // Starts options.dispatchers_per_device threads (or its dispatchers_by_device entry) for each GPU
  // the backend reports now.
  Scheduler(GpuBackend& backend, InProcessQueue& queue, Metrics& metrics, SchedulerOptions options = {},
            std::shared_ptr<const topology::Topology> topology = {});
  ~Scheduler();  // shutdown() with no drain time
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // The GPU for a job: `wanted` if given (kiln::Error invalid_argument naming it when the backend
  // has no such GPU); otherwise the placement rule above. Throws kiln::Error (driver_not_found)
  // when no GPU can take work, saying why for each.
  int place(std::optional<int> wanted);
  // The same from the backend's devices as the caller already read them.
  int place(std::optional<int> wanted, const std::vector<DeviceStatus>& devices);

  // spec.device must be placed already; spec.job_id is assigned here. With `run_here` (a caller
  // that will wait for the result anyway) the calling thread runs the device's next job itself
  // when the device's inline lane is free, and returns after it: a synchronous launch then skips
  // two thread hand-offs (to a dispatcher and back). The job run is the queue's choice, so the
  // priorities hold; one inline lane per device bounds a device's launches in flight at
  // dispatchers_per_device + 1.
  SubmitResult submit(LaunchSpec spec, Priority priority, bool run_here = false);

  // The job's state once it finishes or `timeout` passes; nullopt when the tenant has no such job.
  std::optional<JobSnapshot> wait(JobId id, std::string_view tenant, std::chrono::milliseconds timeout);
  std::optional<JobSnapshot> find(JobId id, std::string_view tenant) { return wait(id, tenant, {}); }

  // The tenant's jobs (queued, running, and finished ones still retained) with ids above `after`,
  // in increasing id order, at most `limit`.
  std::vector<JobSnapshot> list(std::string_view tenant, JobId after, std::size_t limit);

  std::size_t running() const noexcept { return running_.load(std::memory_order_relaxed); }

  // Stops accepting, lets queued and running jobs finish for up to `drain`, then cancels what is
  // still queued and joins the dispatchers (a running launch is waited for: its worker's watchdog
  // bounds it). Idempotent; never throws.
  void shutdown(std::chrono::milliseconds drain) noexcept;

 private:
  struct Job {
    std::mutex mutex;
    std::condition_variable done;
    LaunchSpec spec;
    Priority priority = Priority::normal;
    JobState state = JobState::queued;
    JobOutcome outcome = JobOutcome::completed;
    LaunchResult result;
    Clock::time_point accepted{}, started{}, finished{};
  };
  struct Shard {
    std::mutex mutex;
    std::unordered_map<JobId, std::shared_ptr<Job>> jobs;
  };

  std::shared_ptr<Job> lookup(JobId id);
  void dispatch(int device, int index, std::stop_token stop);
  void run(const Claim& claim);  // runs a claimed job to its end
  void finish(Job& job, JobOutcome outcome, LaunchResult result);
  void forget_old_jobs();
  JobSnapshot snapshot(JobId id, Job& job);  // requires job.mutex

  GpuBackend& backend_;
  InProcessQueue& queue_;
  Metrics& metrics_;
  const SchedulerOptions options_;
  std::shared_ptr<const topology::Topology> topology_;

  std::array<Shard, 16> shards_;
  std::atomic<JobId> next_id_{1};
  std::atomic<std::size_t> running_{0};
  std::atomic<bool> accepting_{true};
  std::mutex load_mutex_;             // placement's view of jobs per GPU
  std::map<int, std::size_t> load_;   // queued + running, by device

  std::mutex finished_mutex_;  // finished jobs in finishing order, for retention
  std::vector<std::pair<Clock::time_point, JobId>> finished_order_;

  std::map<int, std::unique_ptr<std::atomic<bool>>> inline_lanes_;  // by device; fixed after construction

  std::mutex shutdown_mutex_;
  bool shut_down_ = false;
  std::vector<std::jthread> dispatchers_;
};

// Throws memory::OutOfMemoryError (with the device's picture) when `bytes` more cannot fit in the
// device's free memory; `in_use` is what kilnd's buffers hold there.
void admit_buffer(const DeviceStatus& device, std::size_t bytes, std::size_t in_use);

}  // namespace kiln::service
