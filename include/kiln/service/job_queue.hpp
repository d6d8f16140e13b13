// JobQueue: where launch jobs wait for a dispatcher. The contract is the one a Redis Streams
// consumer group offers, so a shared queue can replace the in-process one: enqueue; claim hands a
// job to one consumer under a lease; ack ends it; a lease that runs out (its consumer died) is
// reclaimed and the job is handed out again (XAUTOCLAIM). Which job a claim gets is the queue's
// policy (InProcessQueue: priority with aging, then round-robin between tenants, then FIFO).
//
// A queued job carries only what ordering and routing need; the launch itself stays with the node
// that accepted the request (a Redis implementation serialises it alongside).
//
// Thread safety: every member may be called from any thread at once.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include "kiln/service/priority.hpp"

namespace kiln::service {

using JobId = std::uint64_t;
using Clock = std::chrono::steady_clock;

struct QueuedJob {
  JobId id = 0;
  std::string tenant;
  Priority priority = Priority::normal;
  int device = 0;                // the GPU it must run on (placement happened before enqueue)
  Clock::time_point enqueued{};  // aging counts from here; a reclaimed job keeps it
  std::uint32_t deliveries = 0;  // claims so far (more than one after a reclaim)
  bool wake = true;  // false: the enqueuing thread claims it itself next (wake() if it does not)
};

struct Claim {
  QueuedJob job;
  std::string consumer;
  Clock::time_point lease_expires{};
};

enum class EnqueueStatus : std::uint8_t { accepted, queue_full, tenant_full, closed };

class JobQueue {
 public:
  virtual ~JobQueue() = default;
  virtual EnqueueStatus enqueue(QueuedJob job) = 0;
  // The next job for `device`, waiting until one comes, `stop` is requested or the queue is
  // closed (then nullopt).
  virtual std::optional<Claim> claim(int device, std::string_view consumer, std::chrono::milliseconds lease,
                                     std::stop_token stop) = 0;
  // The same without waiting.
  virtual std::optional<Claim> try_claim(int device, std::string_view consumer, std::chrono::milliseconds lease) = 0;
  // Renews a claimed job's lease to `lease` from now (a long launch). False when the lease was lost.
  virtual bool extend(JobId id, std::chrono::milliseconds lease) = 0;
  // The job is finished. False when its lease had expired and it was handed out again.
  virtual bool ack(JobId id) = 0;
  // Removes a job that has not been claimed (its deadline passed, or shutdown). False if absent.
  virtual bool remove(JobId id) = 0;
  // Hands expired leases back to the queue. Returns how many.
  virtual std::size_t reclaim_expired(Clock::time_point now) = 0;
  virtual std::array<std::size_t, kPriorityCount> depth() const = 0;  // waiting, by their own priority
  virtual std::size_t claimed() const = 0;                            // under a lease now
  // Wakes one claim waiting for `device` (a job enqueued with wake = false was left waiting).
  virtual void wake(int device) = 0;
  // Wakes every waiting claim; later enqueues answer `closed`. Claimed jobs may still be acked.
  virtual void close() = 0;
};

}  // namespace kiln::service
