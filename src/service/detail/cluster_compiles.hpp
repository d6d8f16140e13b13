// A node's side of the shared compile queue (ServiceConfig::queue_url). Registering a kernel
// enqueues a compile job (the tenant, the architectures of the accepting node's GPUs, the request
// as the client sent it) and waits for its record; every node runs `threads` consumers that claim
// jobs, compile them through their own JIT cache under their own source policy, and complete them
// with the build (status, answer, serialized images). A heartbeat renews the leases of the jobs
// in hand; a node that dies stops renewing, and after one lease another node takes its jobs over.
// A job handed out more than max_deliveries times (it took every node that tried it down) is
// completed as failed instead of being tried again.
//
// A registration that links device libraries carries each library's name and digest: the consuming
// node links its own library of that name, and refuses the job (503 library_unavailable) when it
// has none or its digest differs, so every node of a cluster needs the same device_libraries.
//
// Thread safety: compile() may be called from any thread; the consumers are the object's own.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "detail/kernel_build.hpp"
#include "kiln/service/metrics.hpp"
#include "kiln/service/log.hpp"
#include "kiln/service/redis_stream_queue.hpp"

namespace kiln::service::detail {


class ClusterCompiles {
 public:
  // `log` receives takeovers (a job reclaimed from a silent node) and the queue's trouble.
  ClusterCompiles(RedisStreamQueue& queue, std::string node, int threads, std::uint32_t max_deliveries,
                  jit::KernelCache& cache, const DeviceLibraries& libraries, Log log = {});
  ~ClusterCompiles();  // stops the consumers (a compile in hand finishes first)
  ClusterCompiles(const ClusterCompiles&) = delete;
  ClusterCompiles& operator=(const ClusterCompiles&) = delete;

  struct Outcome {
    std::uint64_t job = 0;
    std::optional<KernelBuild> build;  // nullopt when `timeout` passed first
    std::string compiled_by;           // the consumer that completed it
  };
  // Enqueues the registration `request_body` (already validated here) of `tenant` for `archs` and
  // waits up to `timeout` for the build, whichever node makes it.
  // `libraries` are the request's, resolved here (their names and digests travel with the job).
  Outcome compile(std::string_view tenant, std::string_view request_body, const std::set<int>& archs,
                  std::chrono::milliseconds timeout, std::span<const DeviceLibraryEntry* const> libraries = {});

  ClusterMetrics counters();
  const std::string& node() const noexcept { return node_; }

 private:
  struct InHand {
    StreamJob job;
    std::string consumer;
  };
  void consume(int index, std::stop_token stop);
  void heartbeat(std::stop_token stop);
  KernelBuild run(const StreamJob& job);

  RedisStreamQueue& queue_;
  const std::string node_;
  const std::uint32_t max_deliveries_;
  jit::KernelCache& cache_;
  const DeviceLibraries& libraries_;
  const Log log_;

  std::atomic<std::uint64_t> enqueued_{0}, completed_{0}, reclaimed_{0}, superseded_{0}, abandoned_{0};
  std::mutex in_hand_mutex_;
  std::vector<InHand> in_hand_;
  std::vector<std::jthread> threads_;
};

// This process's default node name: <hostname>-<pid>.
std::string default_node_name();

}  // namespace kiln::service::detail
