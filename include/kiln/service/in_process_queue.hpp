// InProcessQueue: the default JobQueue, in memory.
//
// Ordering of claims for one device:
//  1. Effective priority: a job's level minus one for every `aging_step` it has waited (never above
//     high). A low job that waited two steps competes as high: nothing starves.
//  2. Among tenants whose best job has the best effective level, round-robin: the tenant after the
//     one served last at that level, so a tenant with a thousand jobs cannot crowd out one with one.
//  3. Within a tenant, the job with the best effective level; ties go to the oldest.
// Each device has its own lane (mutex and condition variable): dispatchers of different GPUs never
// contend. Claimed jobs wait in a lease table (its own mutex) until acked or reclaimed.
//
// Thread safety: every member may be called from any thread at once.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include "kiln/service/job_queue.hpp"

namespace kiln::service {

struct InProcessQueueOptions {
  std::size_t max_jobs = 10000;            // waiting jobs, all tenants
  std::size_t max_jobs_per_tenant = 1000;  // waiting jobs of one tenant
  std::chrono::milliseconds aging_step{2000};
};

class InProcessQueue final : public JobQueue {
 public:
  explicit InProcessQueue(InProcessQueueOptions options = {});
  ~InProcessQueue() override;
  InProcessQueue(const InProcessQueue&) = delete;
  InProcessQueue& operator=(const InProcessQueue&) = delete;

  EnqueueStatus enqueue(QueuedJob job) override;
  std::optional<Claim> claim(int device, std::string_view consumer, std::chrono::milliseconds lease,
                             std::stop_token stop) override;
  std::optional<Claim> try_claim(int device, std::string_view consumer, std::chrono::milliseconds lease) override;
  bool extend(JobId id, std::chrono::milliseconds lease) override;
  bool ack(JobId id) override;
  bool remove(JobId id) override;
  std::size_t reclaim_expired(Clock::time_point now) override;
  std::array<std::size_t, kPriorityCount> depth() const override;
  std::size_t claimed() const override;
  void wake(int device) override;
  void close() override;

  // The level a job waiting since `enqueued` competes at, at time `now`.
  Priority effective_priority(const QueuedJob& job, Clock::time_point now) const noexcept;

 private:
  struct Lane {
    std::mutex mutex;
    std::condition_variable_any ready;
    std::map<std::string, std::array<std::deque<QueuedJob>, kPriorityCount>, std::less<>> tenants;
    std::array<std::string, kPriorityCount> served_last;  // round-robin cursor per effective level
  };
  Lane& lane(int device);
  std::optional<QueuedJob> pop_next(Lane& lane, Clock::time_point now);
  Claim lease_out(QueuedJob job, std::string_view consumer, std::chrono::milliseconds lease);
  void put_back(QueuedJob job);  // at the front of its line: it was first once

  const InProcessQueueOptions options_;
  mutable std::shared_mutex lanes_mutex_;  // guards the map only; lanes are never removed
  std::unordered_map<int, std::unique_ptr<Lane>> lanes_;

  std::mutex counts_mutex_;  // admission: waiting jobs per tenant
  std::unordered_map<std::string, std::size_t> waiting_per_tenant_;
  std::array<std::atomic<std::size_t>, kPriorityCount> waiting_{};
  std::atomic<std::size_t> waiting_total_{0};

  mutable std::mutex leases_mutex_;
  std::unordered_map<JobId, Claim> leases_;
  std::atomic<bool> closed_{false};
};

}  // namespace kiln::service
