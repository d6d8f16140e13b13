#include "kiln/service/in_process_queue.hpp"

#include <algorithm>
#include <string>
#include <vector>

namespace kiln::service {

InProcessQueue::InProcessQueue(InProcessQueueOptions options) : options_(options) {}

InProcessQueue::~InProcessQueue() { close(); }

InProcessQueue::Lane& InProcessQueue::lane(int device) {
  {
    std::shared_lock lock(lanes_mutex_);
    if (auto it = lanes_.find(device); it != lanes_.end()) return *it->second;
  }
  std::unique_lock lock(lanes_mutex_);
  auto& slot = lanes_[device];
  if (!slot) slot = std::make_unique<Lane>();
  return *slot;
}

Priority InProcessQueue::effective_priority(const QueuedJob& job, Clock::time_point now) const noexcept {
  auto level = static_cast<long long>(job.priority);
  if (options_.aging_step.count() > 0 && now > job.enqueued) {
    level -= std::chrono::duration_cast<std::chrono::milliseconds>(now - job.enqueued).count() /
             options_.aging_step.count();
  }
  return static_cast<Priority>(std::max(0LL, level));
}

EnqueueStatus InProcessQueue::enqueue(QueuedJob job) {
  if (closed_.load(std::memory_order_acquire)) return EnqueueStatus::closed;
  {
    std::lock_guard lock(counts_mutex_);
    if (waiting_total_.load(std::memory_order_relaxed) >= options_.max_jobs) return EnqueueStatus::queue_full;
    auto& mine = waiting_per_tenant_[job.tenant];
    if (mine >= options_.max_jobs_per_tenant) return EnqueueStatus::tenant_full;
    ++mine;
    waiting_total_.fetch_add(1, std::memory_order_relaxed);
  }
  waiting_[static_cast<std::size_t>(job.priority)].fetch_add(1, std::memory_order_relaxed);
  if (job.enqueued == Clock::time_point{}) job.enqueued = Clock::now();
  Lane& l = lane(job.device);
  {
    std::lock_guard lock(l.mutex);
    const bool wake = job.wake;
    l.tenants[job.tenant][static_cast<std::size_t>(job.priority)].push_back(std::move(job));
    if (!wake) return EnqueueStatus::accepted;
  }
  l.ready.notify_one();
  return EnqueueStatus::accepted;
}

std::optional<QueuedJob> InProcessQueue::pop_next(Lane& l, Clock::time_point now) {
  // Each (tenant, level) line is FIFO, so its front is its oldest and most aged job: only fronts
  // can win. best[t] is tenant t's winning line and that line's effective level.
  struct Candidate {
    std::string_view tenant;
    std::size_t line;
    Priority effective;
    Clock::time_point enqueued;
  };
  std::vector<Candidate> candidates;
  candidates.reserve(l.tenants.size());
  for (auto& [tenant, lines] : l.tenants) {
    std::optional<Candidate> best;
    for (std::size_t p = 0; p < kPriorityCount; ++p) {
      if (lines[p].empty()) continue;
      const QueuedJob& front = lines[p].front();
      Candidate c{tenant, p, effective_priority(front, now), front.enqueued};
      if (!best || c.effective < best->effective ||
          (c.effective == best->effective && c.enqueued < best->enqueued))
        best = c;
    }
    if (best) candidates.push_back(*best);
  }
  if (candidates.empty()) return std::nullopt;
  Priority level = Priority::low;
  for (const Candidate& c : candidates) level = std::min(level, c.effective);
  std::string& cursor = l.served_last[static_cast<std::size_t>(level)];
  // Candidates are in tenant order (the map is sorted): the first after the cursor, else wrap.
  const Candidate* chosen = nullptr;
  const Candidate* first = nullptr;
  for (const Candidate& c : candidates) {
    if (c.effective != level) continue;
    if (!first) first = &c;
    if (c.tenant > cursor) {
      chosen = &c;
      break;
    }
  }
  if (!chosen) chosen = first;
  auto it = l.tenants.find(chosen->tenant);
  auto& line = it->second[chosen->line];
  QueuedJob job = std::move(line.front());
  line.pop_front();
  cursor = job.tenant;
  if (std::all_of(it->second.begin(), it->second.end(), [](const auto& q) { return q.empty(); }))
    l.tenants.erase(it);
  {
    std::lock_guard lock(counts_mutex_);
    if (--waiting_per_tenant_[job.tenant] == 0) waiting_per_tenant_.erase(job.tenant);
    waiting_total_.fetch_sub(1, std::memory_order_relaxed);
  }
  waiting_[static_cast<std::size_t>(job.priority)].fetch_sub(1, std::memory_order_relaxed);
  return job;
}

Claim InProcessQueue::lease_out(QueuedJob job, std::string_view consumer, std::chrono::milliseconds lease) {
  ++job.deliveries;
  Claim claim{std::move(job), std::string(consumer), Clock::now() + lease};
  std::lock_guard lock(leases_mutex_);
  leases_[claim.job.id] = claim;
  return claim;
}

std::optional<Claim> InProcessQueue::claim(int device, std::string_view consumer, std::chrono::milliseconds lease,
                                           std::stop_token stop) {
  Lane& l = lane(device);
  std::unique_lock lock(l.mutex);
  for (;;) {
    if (closed_.load(std::memory_order_acquire) || stop.stop_requested()) return std::nullopt;
    if (auto job = pop_next(l, Clock::now())) {
      lock.unlock();
      return lease_out(std::move(*job), consumer, lease);
    }
    // Aging needs no wake-up: it changes which job goes next, not whether one is there.
    l.ready.wait(lock, stop, [&] { return closed_.load(std::memory_order_acquire) || !l.tenants.empty(); });
  }
}

std::optional<Claim> InProcessQueue::try_claim(int device, std::string_view consumer, std::chrono::milliseconds lease) {
  Lane& l = lane(device);
  std::optional<QueuedJob> job;
  {
    std::lock_guard lock(l.mutex);
    job = pop_next(l, Clock::now());
  }
  if (!job) return std::nullopt;
  return lease_out(std::move(*job), consumer, lease);
}

bool InProcessQueue::extend(JobId id, std::chrono::milliseconds lease) {
  std::lock_guard lock(leases_mutex_);
  auto it = leases_.find(id);
  if (it == leases_.end()) return false;
  it->second.lease_expires = Clock::now() + lease;
  return true;
}

bool InProcessQueue::ack(JobId id) {
  std::lock_guard lock(leases_mutex_);
  return leases_.erase(id) == 1;
}

bool InProcessQueue::remove(JobId id) {
  std::vector<Lane*> all;
  {
    std::shared_lock lock(lanes_mutex_);
    for (auto& [device, l] : lanes_) all.push_back(l.get());
  }
  for (Lane* l : all) {
    std::lock_guard lock(l->mutex);
    for (auto it = l->tenants.begin(); it != l->tenants.end(); ++it) {
      for (auto& line : it->second) {
        auto found = std::find_if(line.begin(), line.end(), [&](const QueuedJob& j) { return j.id == id; });
        if (found == line.end()) continue;
        const std::string tenant = found->tenant;
        const auto level = static_cast<std::size_t>(found->priority);
        line.erase(found);
        if (std::all_of(it->second.begin(), it->second.end(), [](const auto& q) { return q.empty(); }))
          l->tenants.erase(it);
        {
          std::lock_guard counts(counts_mutex_);
          if (--waiting_per_tenant_[tenant] == 0) waiting_per_tenant_.erase(tenant);
          waiting_total_.fetch_sub(1, std::memory_order_relaxed);
        }
        waiting_[level].fetch_sub(1, std::memory_order_relaxed);
        return true;
      }
    }
  }
  return false;
}

void InProcessQueue::put_back(QueuedJob job) {
  {
    std::lock_guard lock(counts_mutex_);
    ++waiting_per_tenant_[job.tenant];  // a reclaimed job is never refused: it was admitted once
    waiting_total_.fetch_add(1, std::memory_order_relaxed);
  }
  waiting_[static_cast<std::size_t>(job.priority)].fetch_add(1, std::memory_order_relaxed);
  Lane& l = lane(job.device);
  {
    std::lock_guard lock(l.mutex);
    l.tenants[job.tenant][static_cast<std::size_t>(job.priority)].push_front(std::move(job));
  }
  l.ready.notify_one();
}

std::size_t InProcessQueue::reclaim_expired(Clock::time_point now) {
  std::vector<QueuedJob> expired;
  {
    std::lock_guard lock(leases_mutex_);
    for (auto it = leases_.begin(); it != leases_.end();) {
      if (it->second.lease_expires <= now) {
        expired.push_back(std::move(it->second.job));
        it = leases_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (QueuedJob& job : expired) put_back(std::move(job));
  return expired.size();
}

std::array<std::size_t, kPriorityCount> InProcessQueue::depth() const {
  std::array<std::size_t, kPriorityCount> out{};
  for (std::size_t p = 0; p < kPriorityCount; ++p) out[p] = waiting_[p].load(std::memory_order_relaxed);
  return out;
}

std::size_t InProcessQueue::claimed() const {
  std::lock_guard lock(leases_mutex_);
  return leases_.size();
}

void InProcessQueue::close() {
  closed_.store(true, std::memory_order_release);
  std::shared_lock lock(lanes_mutex_);
  for (auto& [device, l] : lanes_) {
    // Taking the lane's mutex orders the flag before a claimer's predicate check: no lost wake-up.
    std::lock_guard lane_lock(l->mutex);
    l->ready.notify_all();
  }
}

void InProcessQueue::wake(int device) {
  Lane& l = lane(device);
  { std::lock_guard lock(l.mutex); }  // a claimer between its check and its wait sees the job or the notify
  l.ready.notify_one();
}

}  // namespace kiln::service
