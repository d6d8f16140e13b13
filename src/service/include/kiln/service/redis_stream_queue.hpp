// RedisStreamQueue: a work queue several kilnd nodes share, on a Redis Stream with a consumer
// group. Any node enqueues; every node's consumers claim (XREADGROUP); a consumer keeps its job by
// renewing the lease while it works; a job whose consumer went silent for a lease (its node died)
// is handed to another consumer (XAUTOCLAIM); the result goes back to whoever waits for it.
//
// Exactly one completion per job: complete() is one Lua script that checks that the caller still
// owns the job in the group's pending list, acknowledges and deletes the entry, stores the result
// in the job's record and wakes the waiter, all or nothing. A consumer that lost its lease (it was
// slow, not dead, and the job went to another) is refused and its result dropped, so a job can be
// *run* twice after a reclaim but *completed* once.
//
// Keys (all under options.prefix): <p>:<name>:stream (the entries), <p>:<name>:next (job ids),
// <p>:<name>:job:<id> (the record: state, origin, tenant, deliveries, consumer, completions, result
// fields; kept for options.retention after completion), <p>:<name>:reply:<id> (the waiter's wake-up).
//
// Thread safety: every member may be called from any thread at once; each call borrows one of the
// queue's connections (blocking calls hold theirs while they wait).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/service/redis_client.hpp"

namespace kiln::service {

struct StreamQueueOptions {
  std::string prefix = "kiln";
  std::string name = "compile";
  std::string group = "kilnd";
  std::chrono::milliseconds lease{10000};  // a consumer silent this long loses its job
  std::chrono::seconds retention{600};     // a completed job's record stays readable this long
};

struct StreamJob {
  std::uint64_t id = 0;
  std::string entry;  // the stream entry's id
  std::string payload;
  std::string origin;  // the node that enqueued it
  std::uint32_t deliveries = 1;  // more than 1 after a reclaim
  bool reclaimed = false;        // taken over from a consumer whose lease ran out
};

using JobRecord = std::map<std::string, std::string>;

class RedisStreamQueue {
 public:
  // Connects and creates the consumer group if it does not exist. Throws kiln::Error
  // (Errc::unavailable) when Redis cannot be reached or is older than 6.2.
  RedisStreamQueue(RedisAddress address, StreamQueueOptions options);
  ~RedisStreamQueue();

  // Adds a job; returns its id (unique across every node sharing the queue).
  std::uint64_t enqueue(std::string_view payload, std::string_view origin, std::string_view tenant);

  // The next job for `consumer`: first a job whose lease ran out, else a new one, waiting up to
  // `block` for one. nullopt when none came.
  std::optional<StreamJob> claim(std::string_view consumer, std::chrono::milliseconds block);
  // Renews the lease of a job `consumer` holds. False when the job is no longer its own.
  bool extend(const StreamJob& job, std::string_view consumer);
  // Ends the job with `result` (merged into its record) if `consumer` still holds it; false (and
  // nothing changed) when it does not.
  bool complete(const StreamJob& job, std::string_view consumer, const JobRecord& result);

  // Waits up to `timeout` for the job's completion; its record then, nullopt on timeout.
  std::optional<JobRecord> wait(std::uint64_t id, std::chrono::milliseconds timeout);
  // The job's record as it is now (empty when unknown or expired).
  JobRecord record(std::uint64_t id);

  struct Depth {
    std::size_t waiting = 0;  // not yet claimed
    std::size_t claimed = 0;  // under a lease
  };
  Depth depth();

  const StreamQueueOptions& options() const noexcept { return options_; }
  const RedisAddress& address() const noexcept { return address_; }

 private:
  class Lease;  // a borrowed connection
  std::unique_ptr<RedisClient> borrow();
  void give_back(std::unique_ptr<RedisClient> client);
  std::string key(std::string_view suffix) const;

  const RedisAddress address_;
  const StreamQueueOptions options_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<RedisClient>> idle_;
};

}  // namespace kiln::service
