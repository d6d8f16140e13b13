// The values of kilnd's launch queue (InProcessQueue, in_process_queue.hpp): a queued job, a
// claim on one under a lease, and what enqueueing answers. Launches stay with the node whose GPUs
// hold their buffers, so the launch queue is in-process only; what nodes share is compilation
// (RedisStreamQueue), whose jobs and claims are its own.
//
// A queued job carries only what ordering and routing need; the launch itself stays with the
// scheduler's job record.
//
// Thread safety: plain values.
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

}  // namespace kiln::service
