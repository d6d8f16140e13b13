#include "kiln/service/scheduler.hpp"

#include <algorithm>
#include <numeric>

#include "kiln/driver/error.hpp"
#include "kiln/memory/out_of_memory.hpp"
#include "kiln/topology/placement.hpp"
#include "kiln/topology/topology.hpp"

namespace kiln::service {

namespace {

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

JobOutcome outcome_of(LaunchStatus status) {
  switch (status) {
    case LaunchStatus::completed: return JobOutcome::completed;
    case LaunchStatus::failed: return JobOutcome::failed;
    case LaunchStatus::timed_out: return JobOutcome::timed_out;
    case LaunchStatus::device_unavailable: return JobOutcome::device_unavailable;
  }
  return JobOutcome::failed;
}

}  // namespace

Scheduler::Scheduler(GpuBackend& backend, InProcessQueue& queue, Metrics& metrics, SchedulerOptions options,
                     std::shared_ptr<const topology::Topology> topology)
    : backend_(backend), queue_(queue), metrics_(metrics), options_(options), topology_(std::move(topology)) {
  for (const DeviceStatus& d : backend_.devices()) {
    inline_lanes_.emplace(d.ordinal, std::make_unique<std::atomic<bool>>(false));
    const auto by_device = options_.dispatchers_by_device.find(d.ordinal);
    const int n = by_device == options_.dispatchers_by_device.end() ? options_.dispatchers_per_device : by_device->second;
    for (int i = 0; i < std::max(1, n); ++i)
      dispatchers_.emplace_back([this, device = d.ordinal, i](std::stop_token stop) { dispatch(device, i, stop); });
  }
}

Scheduler::~Scheduler() { shutdown(std::chrono::milliseconds(0)); }

int Scheduler::place(std::optional<int> wanted) { return place(wanted, backend_.devices()); }

int Scheduler::place(std::optional<int> wanted, const std::vector<DeviceStatus>& devices) {
  if (devices.empty())
    throw Error(Errc::driver_not_found, "no GPU on this machine: the GPU backend reports no devices");
  if (wanted) {
    for (const DeviceStatus& d : devices)
      if (d.ordinal == *wanted) return d.ordinal;
    throw Error(Errc::invalid_argument, "device " + std::to_string(*wanted) + " does not exist (this machine has " +
                                            std::to_string(devices.size()) + " GPU(s))");
  }
  std::vector<const DeviceStatus*> usable;
  std::string why_not;
  for (const DeviceStatus& d : devices) {
    if (d.worker_up && !d.circuit_open) {
      usable.push_back(&d);
      continue;
    }
    why_not += (why_not.empty() ? "" : "; ") + std::string("GPU ") + std::to_string(d.ordinal) + ": " +
               (!d.worker_up ? "no worker" : "circuit breaker open") +
               (d.last_failure.empty() ? "" : " (" + d.last_failure + ")");
  }
  if (usable.empty()) throw Error(Errc::driver_not_found, "no GPU can take work: " + why_not);
  if (usable.size() == 1) return usable.front()->ordinal;

  std::map<int, std::size_t> load;
  {
    std::lock_guard lock(load_mutex_);
    load = load_;
  }
  if (topology_) {
    topology::PlacementConstraints constraints;
    for (const DeviceStatus* d : usable) {
      constraints.load[d->uuid] = static_cast<double>(load[d->ordinal]);
      constraints.free_memory[d->uuid] = d->memory_free;
    }
    for (const auto& gpu : topology_->gpus())
      if (std::none_of(usable.begin(), usable.end(), [&](const DeviceStatus* d) { return d->uuid == gpu.uuid; }))
        constraints.exclude.push_back(gpu.uuid);
    try {
      const topology::Placement placement = topology::choose(*topology_, 1, constraints);
      for (const DeviceStatus* d : usable)
        if (d->uuid == placement.gpus.front().uuid) return d->ordinal;
    } catch (const Error&) {
      // The topology does not know these GPUs (UUIDs differ): fall back to load alone.
    }
  }
  const DeviceStatus* best = *std::min_element(usable.begin(), usable.end(), [&](const auto* a, const auto* b) {
    if (load[a->ordinal] != load[b->ordinal]) return load[a->ordinal] < load[b->ordinal];
    return a->memory_free > b->memory_free;
  });
  return best->ordinal;
}

SubmitResult Scheduler::submit(LaunchSpec spec, Priority priority, bool run_here) {
  forget_old_jobs();
  if (!accepting_.load(std::memory_order_acquire))
    return {SubmitStatus::shutting_down, 0, "the service is shutting down and takes no new launches"};
  const JobId id = next_id_.fetch_add(1, std::memory_order_relaxed);
  auto job = std::make_shared<Job>();
  spec.job_id = id;
  const int device = spec.device;
  QueuedJob queued{id, spec.tenant, priority, device, Clock::now(), 0};
  // The caller runs the device's next job itself when the device's inline lane is free.
  std::atomic<bool>* lane = nullptr;
  if (run_here)
    if (auto it = inline_lanes_.find(device); it != inline_lanes_.end() && !it->second->exchange(true, std::memory_order_acquire))
      lane = it->second.get();
  queued.wake = lane == nullptr;
  job->spec = std::move(spec);
  job->priority = priority;
  job->accepted = queued.enqueued;
  Shard& shard = shards_[id % shards_.size()];
  {
    std::lock_guard lock(shard.mutex);
    shard.jobs.emplace(id, job);
  }
  {
    std::lock_guard lock(load_mutex_);
    ++load_[device];
  }
  const EnqueueStatus status = queue_.enqueue(std::move(queued));
  if (lane) {
    if (status == EnqueueStatus::accepted) {
      // The queue's choice, as a dispatcher would get it: this job when nothing waits ahead of it,
      // else the one that should run first (then a dispatcher is woken for this one).
      std::optional<Claim> claim = queue_.try_claim(device, "inline/" + std::to_string(device), options_.lease_grace);
      if (!claim || claim->job.id != id) queue_.wake(device);
      if (claim) run(*claim);
    }
    lane->store(false, std::memory_order_release);
  }
  if (status == EnqueueStatus::accepted) return {SubmitStatus::accepted, id, {}};
  {
    std::lock_guard lock(shard.mutex);
    shard.jobs.erase(id);
  }
  {
    std::lock_guard lock(load_mutex_);
    --load_[device];
  }
  switch (status) {
    case EnqueueStatus::queue_full: return {SubmitStatus::queue_full, 0, "the launch queue is full; retry later"};
    case EnqueueStatus::tenant_full:
      return {SubmitStatus::tenant_full, 0, "tenant '" + job->spec.tenant + "' has too many queued launches; retry later"};
    default: return {SubmitStatus::shutting_down, 0, "the service is shutting down and takes no new launches"};
  }
}

std::shared_ptr<Scheduler::Job> Scheduler::lookup(JobId id) {
  Shard& shard = shards_[id % shards_.size()];
  std::lock_guard lock(shard.mutex);
  auto it = shard.jobs.find(id);
  return it == shard.jobs.end() ? nullptr : it->second;
}

JobSnapshot Scheduler::snapshot(JobId id, Job& job) {
  const Clock::time_point now = Clock::now();
  JobSnapshot s;
  s.id = id;
  s.tenant = job.spec.tenant;
  s.request_id = job.spec.request_id;
  s.package = job.spec.package;
  s.package_version = job.spec.package_version;
  s.priority = job.priority;
  s.device = job.spec.device;
  s.state = job.state;
  s.outcome = job.outcome;
  s.result = job.result;
  s.queued_ms = ms_between(job.accepted, job.started == Clock::time_point{} ? (job.state == JobState::finished ? job.finished : now) : job.started);
  s.total_ms = ms_between(job.accepted, job.state == JobState::finished ? job.finished : now);
  return s;
}

std::optional<JobSnapshot> Scheduler::wait(JobId id, std::string_view tenant, std::chrono::milliseconds timeout) {
  std::shared_ptr<Job> job = lookup(id);
  // Another tenant's job is reported exactly like a missing one.
  if (!job || job->spec.tenant != tenant) return std::nullopt;
  std::unique_lock lock(job->mutex);
  job->done.wait_for(lock, timeout, [&] { return job->state == JobState::finished; });
  return snapshot(id, *job);
}

std::vector<JobSnapshot> Scheduler::list(std::string_view tenant, JobId after, std::size_t limit) {
  std::vector<std::pair<JobId, std::shared_ptr<Job>>> mine;
  for (Shard& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    for (const auto& [id, job] : shard.jobs)
      if (id > after && job->spec.tenant == tenant) mine.emplace_back(id, job);
  }
  std::sort(mine.begin(), mine.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  if (mine.size() > limit) mine.resize(limit);
  std::vector<JobSnapshot> out;
  out.reserve(mine.size());
  for (auto& [id, job] : mine) {
    std::lock_guard lock(job->mutex);
    out.push_back(snapshot(id, *job));
  }
  return out;
}

void Scheduler::finish(Job& job, JobOutcome outcome, LaunchResult result) {
  const int device = job.spec.device;
  const JobId id = job.spec.job_id;
  Clock::time_point finished;
  std::optional<RecentFailure> failure;  // recorded once the job's lock is released
  {
    std::lock_guard lock(job.mutex);
    job.state = JobState::finished;
    job.outcome = outcome;
    job.result = std::move(result);
    job.finished = finished = Clock::now();
    metrics_.job_finished(outcome, std::chrono::duration<double>(job.finished - job.accepted).count());
    if (outcome != JobOutcome::completed) {
      RecentFailure f;
      f.time = std::chrono::system_clock::now();
      f.source = "launch";
      f.tenant = job.spec.tenant;
      f.request_id = job.spec.request_id;
      f.device = device;
      f.job = id;
      f.error = job.result.error_name;
      f.message = "job " + std::to_string(id) + " " + std::string(to_string(outcome)) + ": " + job.result.message;
      failure = std::move(f);
    }
  }
  if (failure) metrics_.recent().failure(std::move(*failure));
  job.done.notify_all();
  {
    std::lock_guard lock(load_mutex_);
    --load_[device];
  }
  std::lock_guard lock(finished_mutex_);
  finished_order_.emplace_back(finished, id);
}

void Scheduler::forget_old_jobs() {
  const Clock::time_point cutoff = Clock::now() - options_.job_retention;
  std::vector<JobId> old;
  {
    std::lock_guard lock(finished_mutex_);
    auto end = std::find_if(finished_order_.begin(), finished_order_.end(),
                            [&](const auto& entry) { return entry.first > cutoff; });
    for (auto it = finished_order_.begin(); it != end; ++it) old.push_back(it->second);
    finished_order_.erase(finished_order_.begin(), end);
  }
  for (JobId id : old) {
    Shard& shard = shards_[id % shards_.size()];
    std::lock_guard lock(shard.mutex);
    shard.jobs.erase(id);
  }
}

void Scheduler::dispatch(int device, int index, std::stop_token stop) {
  const std::string consumer = "gpu" + std::to_string(device) + "/" + std::to_string(index);
  while (!stop.stop_requested()) {
    queue_.reclaim_expired(Clock::now());
    std::optional<Claim> claim = queue_.claim(device, consumer, options_.lease_grace, stop);
    if (!claim) break;
    run(*claim);
  }
}

void Scheduler::run(const Claim& claim) {
  std::shared_ptr<Job> job = lookup(claim.job.id);
  if (!job) {  // forgotten meanwhile (cannot happen while queued; be safe)
    queue_.ack(claim.job.id);
    return;
  }
  if (Clock::now() >= job->spec.deadline) {
    LaunchResult late;
    late.status = LaunchStatus::timed_out;
    late.error_name = "KILN_DEADLINE_PASSED";
    late.message = "the deadline passed while the job waited in the queue; it did not run";
    queue_.ack(claim.job.id);
    finish(*job, JobOutcome::timed_out, std::move(late));
    return;
  }
  // The launch may run until its deadline: hold the lease that long, plus the grace.
  queue_.extend(claim.job.id, std::chrono::duration_cast<std::chrono::milliseconds>(job->spec.deadline - Clock::now()) +
                                  options_.lease_grace);
  {
    std::lock_guard lock(job->mutex);
    job->state = JobState::running;
    job->started = Clock::now();
  }
  running_.fetch_add(1, std::memory_order_relaxed);
  LaunchResult result;
  try {
    result = backend_.launch(job->spec);
  } catch (const Error& e) {
    result.status = LaunchStatus::failed;
    result.error_name = std::string(e.name());
    result.message = e.what();
  } catch (const std::exception& e) {
    result.status = LaunchStatus::failed;
    result.error_name = "KILN_INTERNAL";
    result.message = e.what();
  }
  running_.fetch_sub(1, std::memory_order_relaxed);
  queue_.ack(claim.job.id);
  const JobOutcome outcome = outcome_of(result.status);
  finish(*job, outcome, std::move(result));
}

void Scheduler::shutdown(std::chrono::milliseconds drain) noexcept {
  std::lock_guard guard(shutdown_mutex_);
  if (shut_down_) return;
  shut_down_ = true;
  accepting_.store(false, std::memory_order_release);
  const Clock::time_point until = Clock::now() + drain;
  auto idle = [&] {
    const auto depth = queue_.depth();
    return std::accumulate(depth.begin(), depth.end(), std::size_t{0}) == 0 && running() == 0;
  };
  while (!dispatchers_.empty() && !idle() && Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // Whatever still waits is cancelled; its waiters wake with the reason.
  for (Shard& shard : shards_) {
    std::vector<std::shared_ptr<Job>> queued;
    {
      std::lock_guard lock(shard.mutex);
      for (auto& [id, job] : shard.jobs) {
        std::lock_guard job_lock(job->mutex);
        if (job->state == JobState::queued) queued.push_back(job);
      }
    }
    for (auto& job : queued) {
      if (!queue_.remove(job->spec.job_id)) continue;  // a dispatcher took it meanwhile
      LaunchResult cancelled;
      cancelled.status = LaunchStatus::device_unavailable;
      cancelled.error_name = "KILN_SHUTTING_DOWN";
      cancelled.message = "the service shut down before the job could run";
      finish(*job, JobOutcome::cancelled, std::move(cancelled));
    }
  }
  queue_.close();
  for (auto& t : dispatchers_) t.request_stop();
  dispatchers_.clear();  // joins; a running launch is bounded by its deadline
}

void admit_buffer(const DeviceStatus& device, std::size_t bytes, std::size_t in_use) {
  if (bytes <= device.memory_free) return;
  memory::MemoryPicture picture;
  picture.device = device.ordinal;
  picture.device_name = device.name;
  picture.requested = bytes;
  picture.free = device.memory_free;
  picture.total = device.memory_total;
  picture.in_use = in_use;
  throw memory::OutOfMemoryError(std::move(picture), "kilnd buffer admission");
}

}  // namespace kiln::service
