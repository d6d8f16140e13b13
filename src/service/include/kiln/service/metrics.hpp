// Metrics: the counters kilnd keeps itself (launch outcomes, launch latency, the answers of HTTP, gRPC
// and the IPC socket), and the
// Prometheus text rendering of those plus the gauges read at scrape time (queue depth, GPUs, memory,
// compile cache). Counters are atomics: recording costs no lock; a job's end also goes into
// recent() (the status page's last minute), and a gRPC or IPC socket answer into its (front end,
// method, code) count, each under one short lock.
//
// Thread safety: every member may be called from any thread at once.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "kiln/jit/kernel_cache.hpp"
#include "kiln/service/gpu_backend.hpp"
#include "kiln/service/priority.hpp"
#include "kiln/service/recent_activity.hpp"

namespace kiln::service {

// How a launch job ended, as the API and the metrics name it.
enum class JobOutcome : std::uint8_t { completed, failed, timed_out, device_unavailable, cancelled };
inline constexpr std::size_t kJobOutcomeCount = 5;
std::string_view to_string(JobOutcome outcome) noexcept;

// The shared compile queue, from this node's side (only with ServiceConfig::queue_url).
struct ClusterMetrics {
  std::uint64_t enqueued = 0;    // compile jobs this node put on the queue
  std::uint64_t completed = 0;   // jobs this node's consumers completed
  std::uint64_t reclaimed = 0;   // jobs this node took over from a consumer whose lease ran out
  std::uint64_t superseded = 0;  // results dropped: the lease had been lost to another node
  std::uint64_t abandoned = 0;   // jobs failed after cluster_max_deliveries
  std::size_t waiting = 0;       // in the shared queue, unclaimed
  std::size_t claimed = 0;       // in the shared queue, under a lease
};

// The kernel repository (only with ServiceConfig::repository.path).
struct RepositoryMetrics {
  std::uint64_t loads = 0, failures = 0, swaps = 0, rollbacks = 0;
  std::size_t loading = 0, ready = 0, failed = 0, unloaded = 0;  // versions now, by state
};

// The facts gathered at scrape time.
struct MetricsInputs {
  std::array<std::size_t, kPriorityCount> queue_depth{};
  std::size_t jobs_running = 0;
  std::vector<DeviceStatus> devices;
  std::map<int, std::uint64_t> buffer_bytes_by_device;
  std::map<std::string, std::uint64_t> buffer_bytes_by_tenant;
  std::size_t kernels = 0;
  std::size_t compiles_running = 0;  // registrations holding a compile slot
  std::size_t compiles_waiting = 0;  // registrations waiting for one
  jit::CacheStats cache;
  bool ready = false;
  std::optional<ClusterMetrics> cluster;
  std::optional<RepositoryMetrics> repository;
};

class Metrics {
 public:
  // Upper bounds of the launch latency buckets, seconds (from acceptance to completion).
  static constexpr std::array<double, 14> kLatencyBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                             0.1,    0.25,  0.5,    1,     2.5,   5,    10};

  // Also recorded in recent() (the status page's last minute).
  void job_finished(JobOutcome outcome, double seconds) noexcept;
  void http_answered(int status) noexcept;
  // A call's end on a front end other than HTTP: its method (gRPC: kilnd.proto's name, "GetKernel";
  // the IPC socket: the op, "export_buffer") and code (gRPC's status, "NOT_FOUND"; the IPC socket's
  // error code, "ok" for none). Each front end names a fixed set of each, so the series stay few.
  enum class FrontEnd : std::uint8_t { grpc, ipc };
  void call_answered(FrontEnd front_end, std::string_view method, std::string_view code) noexcept;
  void grpc_answered(std::string_view method, std::string_view code) noexcept {
    call_answered(FrontEnd::grpc, method, code);
  }

  // The last minute's launches and the last failures (GET /v1/status).
  RecentActivity& recent() noexcept { return recent_; }
  const RecentActivity& recent() const noexcept { return recent_; }

  std::uint64_t jobs(JobOutcome outcome) const noexcept;
  // Prometheus text exposition format 0.0.4.
  std::string render(const MetricsInputs& inputs) const;

 private:
  std::array<std::atomic<std::uint64_t>, kJobOutcomeCount> jobs_{};
  std::array<std::atomic<std::uint64_t>, kLatencyBuckets.size()> latency_buckets_{};  // not cumulative
  std::atomic<std::uint64_t> latency_count_{0};
  std::atomic<std::uint64_t> latency_sum_us_{0};
  // HTTP status classes 1xx..5xx and the statuses worth telling apart.
  std::array<std::atomic<std::uint64_t>, 600> http_{};
  mutable std::mutex calls_mutex_;
  std::map<std::tuple<FrontEnd, std::string, std::string>, std::uint64_t> calls_;  // (front end, method, code) -> calls
  RecentActivity recent_;
};

// Prometheus label value escaping: backslash, double quote and line feed.
std::string escape_label_value(std::string_view value);

}  // namespace kiln::service
