// InProcessQueue: where launch jobs wait for a dispatcher, in memory: enqueue; claim hands a job to
// one consumer under a lease; ack ends it; a lease that runs out (its consumer died) is reclaimed
// and the job handed out again.
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

class InProcessQueue {
 public:
  explicit InProcessQueue(InProcessQueueOptions options = {});
  ~InProcessQueue();
  InProcessQueue(const InProcessQueue&) = delete;
  InProcessQueue& operator=(const InProcessQueue&) = delete;

  EnqueueStatus enqueue(QueuedJob job);
  // The next job for `device`, waiting until one comes, `stop` is requested or the queue is
  // closed (then nullopt).
  std::optional<Claim> claim(int device, std::string_view consumer, std::chrono::milliseconds lease, std::stop_token stop);
  // The same without waiting.
  std::optional<Claim> try_claim(int device, std::string_view consumer, std::chrono::milliseconds lease);
  // Renews a claimed job's lease to `lease` from now (a long launch). False when the lease was lost.
  bool extend(JobId id, std::chrono::milliseconds lease);
  // The job is finished. False when its lease had expired and it was handed out again.
  bool ack(JobId id);
  // Removes a job that has not been claimed (its deadline passed, or shutdown). False if absent.
  bool remove(JobId id);
  // Hands expired leases back to the queue. Returns how many.
  std::size_t reclaim_expired(Clock::time_point now);
  std::array<std::size_t, kPriorityCount> depth() const;  // waiting, by their own priority
  std::size_t claimed() const;                            // under a lease now
  // Wakes one claim waiting for `device` (a job enqueued with wake = false was left waiting).
  void wake(int device);
  // Wakes every waiting claim; later enqueues answer `closed`. Claimed jobs may still be acked.
  void close();

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
