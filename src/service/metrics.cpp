#include "kiln/service/metrics.hpp"

#include <cstdio>
#include <sstream>

namespace kiln::service {

std::string_view to_string(JobOutcome outcome) noexcept {
  switch (outcome) {
    case JobOutcome::completed: return "completed";
    case JobOutcome::failed: return "failed";
    case JobOutcome::timed_out: return "timed_out";
    case JobOutcome::device_unavailable: return "device_unavailable";
    case JobOutcome::cancelled: return "cancelled";
  }
  return "unknown";
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void Metrics::job_finished(JobOutcome outcome, double seconds) noexcept {
  jobs_[static_cast<std::size_t>(outcome)].fetch_add(1, std::memory_order_relaxed);
  for (std::size_t i = 0; i < kLatencyBuckets.size(); ++i) {
    if (seconds <= kLatencyBuckets[i]) {
      latency_buckets_[i].fetch_add(1, std::memory_order_relaxed);
      break;
    }
  }
  latency_count_.fetch_add(1, std::memory_order_relaxed);
  latency_sum_us_.fetch_add(static_cast<std::uint64_t>(seconds * 1e6), std::memory_order_relaxed);
  recent_.launch_ended(seconds);
}

void Metrics::http_answered(int status) noexcept {
  if (status >= 100 && status < 600) http_[static_cast<std::size_t>(status)].fetch_add(1, std::memory_order_relaxed);
}

void Metrics::call_answered(FrontEnd front_end, std::string_view method, std::string_view code) noexcept {
  try {
    std::tuple<FrontEnd, std::string, std::string> key(front_end, method, code);  // made before the lock
    std::lock_guard lock(calls_mutex_);
    ++calls_[std::move(key)];
  } catch (...) {  // out of memory: one call uncounted
  }
}

std::uint64_t Metrics::jobs(JobOutcome outcome) const noexcept {
  return jobs_[static_cast<std::size_t>(outcome)].load(std::memory_order_relaxed);
}

namespace {

std::string number(double value) {
  char text[64];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

class Writer {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
  }
  void sample(std::string_view name, std::string_view labels, std::uint64_t value) {
    out_ << name;
    if (!labels.empty()) out_ << '{' << labels << '}';
    out_ << ' ' << value << '\n';
  }
  void sample(std::string_view name, std::string_view labels, double value) {
    out_ << name;
    if (!labels.empty()) out_ << '{' << labels << '}';
    out_ << ' ' << number(value) << '\n';
  }
  std::string str() const { return out_.str(); }

 private:
  std::ostringstream out_;
};

std::string device_labels(const DeviceStatus& d) {
  return "device=\"" + std::to_string(d.ordinal) + "\",uuid=\"" + escape_label_value(d.uuid) + "\"";
}

}  // namespace

std::string Metrics::render(const MetricsInputs& in) const {
  Writer w;
  w.family("kiln_ready", "gauge", "1 when at least one GPU has a worker and a closed circuit breaker.");
  w.sample("kiln_ready", "", static_cast<std::uint64_t>(in.ready ? 1 : 0));

  w.family("kiln_queue_depth", "gauge", "Launch jobs waiting for a dispatcher, by their own priority.");
  for (std::size_t p = 0; p < kPriorityCount; ++p)
    w.sample("kiln_queue_depth", "priority=\"" + std::string(to_string(static_cast<Priority>(p))) + "\"",
             static_cast<std::uint64_t>(in.queue_depth[p]));
  w.family("kiln_jobs_running", "gauge", "Launch jobs handed to a GPU worker and not finished.");
  w.sample("kiln_jobs_running", "", static_cast<std::uint64_t>(in.jobs_running));

  w.family("kiln_launches_total", "counter", "Launch jobs finished, by outcome.");
  for (std::size_t o = 0; o < kJobOutcomeCount; ++o)
    w.sample("kiln_launches_total", "status=\"" + std::string(to_string(static_cast<JobOutcome>(o))) + "\"",
             jobs_[o].load(std::memory_order_relaxed));

  w.family("kiln_launch_duration_seconds", "histogram", "From acceptance of a launch job to its end.");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < kLatencyBuckets.size(); ++i) {
    cumulative += latency_buckets_[i].load(std::memory_order_relaxed);
    w.sample("kiln_launch_duration_seconds_bucket", "le=\"" + number(kLatencyBuckets[i]) + "\"", cumulative);
  }
  // Read the count after the buckets: a job finishing meanwhile may only make +Inf larger.
  const std::uint64_t count = std::max(cumulative, latency_count_.load(std::memory_order_relaxed));
  w.sample("kiln_launch_duration_seconds_bucket", "le=\"+Inf\"", count);
  w.sample("kiln_launch_duration_seconds_sum", "",
           static_cast<double>(latency_sum_us_.load(std::memory_order_relaxed)) / 1e6);
  w.sample("kiln_launch_duration_seconds_count", "", count);

  w.family("kiln_compile_cache_hits_total", "counter", "Kernel compiles answered from a cache tier.");
  w.sample("kiln_compile_cache_hits_total", "tier=\"memory\"", in.cache.memory_hits);
  w.sample("kiln_compile_cache_hits_total", "tier=\"disk\"", in.cache.disk_hits);
  w.family("kiln_compile_cache_misses_total", "counter", "Kernel compiles no cache tier could answer (NVRTC ran).");
  w.sample("kiln_compile_cache_misses_total", "", in.cache.compiles + in.cache.compile_failures);
  w.family("kiln_compiles_total", "counter", "NVRTC runs, by result.");
  w.sample("kiln_compiles_total", "result=\"ok\"", in.cache.compiles);
  w.sample("kiln_compiles_total", "result=\"rejected\"", in.cache.compile_failures);
  w.family("kiln_links_total", "counter", "nvJitLink runs (kernels linked with device libraries), by result.");
  w.sample("kiln_links_total", "result=\"ok\"", in.cache.links);
  w.sample("kiln_links_total", "result=\"rejected\"", in.cache.link_failures);
  w.family("kiln_kernels", "gauge", "Registered kernels, all tenants.");
  w.sample("kiln_kernels", "", static_cast<std::uint64_t>(in.kernels));
  w.family("kiln_compiles", "gauge", "Kernel registrations compiling (running) or waiting for a compile slot (waiting).");
  w.sample("kiln_compiles", "state=\"running\"", static_cast<std::uint64_t>(in.compiles_running));
  w.sample("kiln_compiles", "state=\"waiting\"", static_cast<std::uint64_t>(in.compiles_waiting));

  w.family("kiln_gpus", "gauge", "GPUs the backend reports.");
  w.sample("kiln_gpus", "", static_cast<std::uint64_t>(in.devices.size()));
  w.family("kiln_device_memory_total_bytes", "gauge", "Device memory, total.");
  for (const auto& d : in.devices) w.sample("kiln_device_memory_total_bytes", device_labels(d), std::uint64_t{d.memory_total});
  w.family("kiln_device_memory_free_bytes", "gauge", "Device memory, free.");
  for (const auto& d : in.devices) w.sample("kiln_device_memory_free_bytes", device_labels(d), std::uint64_t{d.memory_free});
  w.family("kiln_device_buffer_bytes", "gauge", "Bytes of live kilnd buffers, by device.");
  for (const auto& [device, bytes] : in.buffer_bytes_by_device)
    w.sample("kiln_device_buffer_bytes", "device=\"" + std::to_string(device) + "\"", bytes);
  w.family("kiln_tenant_buffer_bytes", "gauge", "Bytes of live kilnd buffers, by tenant.");
  for (const auto& [tenant, bytes] : in.buffer_bytes_by_tenant)
    w.sample("kiln_tenant_buffer_bytes", "tenant=\"" + escape_label_value(tenant) + "\"", bytes);
  w.family("kiln_worker_up", "gauge", "1 when a worker process serves the GPU.");
  for (const auto& d : in.devices) w.sample("kiln_worker_up", device_labels(d), std::uint64_t{d.worker_up ? 1u : 0u});
  w.family("kiln_circuit_open", "gauge", "1 when the GPU's circuit breaker stops scheduling on it.");
  for (const auto& d : in.devices) w.sample("kiln_circuit_open", device_labels(d), std::uint64_t{d.circuit_open ? 1u : 0u});
  w.family("kiln_worker_restarts_total", "counter", "Worker processes restarted, by GPU.");
  for (const auto& d : in.devices) w.sample("kiln_worker_restarts_total", device_labels(d), d.worker_restarts);
  w.family("kiln_watchdog_kills_total", "counter", "Workers ended because a kernel passed its deadline.");
  for (const auto& d : in.devices) w.sample("kiln_watchdog_kills_total", device_labels(d), d.watchdog_kills);
  w.family("kiln_worker_image_bytes_total", "counter", "Kernel image bytes sent to GPU workers (each image once per worker), by GPU.");
  for (const auto& d : in.devices) w.sample("kiln_worker_image_bytes_total", device_labels(d), d.image_bytes_sent);

  if (in.repository) {
    const RepositoryMetrics& r = *in.repository;
    w.family("kiln_repository_events_total", "counter",
             "Kernel repository: versions loaded and refused, switches of the serving version, rollbacks.");
    w.sample("kiln_repository_events_total", "event=\"loaded\"", r.loads);
    w.sample("kiln_repository_events_total", "event=\"refused\"", r.failures);
    w.sample("kiln_repository_events_total", "event=\"swapped\"", r.swaps);
    w.sample("kiln_repository_events_total", "event=\"rolled_back\"", r.rollbacks);
    w.family("kiln_repository_versions", "gauge", "Kernel repository versions now, by state.");
    w.sample("kiln_repository_versions", "state=\"loading\"", static_cast<std::uint64_t>(r.loading));
    w.sample("kiln_repository_versions", "state=\"ready\"", static_cast<std::uint64_t>(r.ready));
    w.sample("kiln_repository_versions", "state=\"failed\"", static_cast<std::uint64_t>(r.failed));
    w.sample("kiln_repository_versions", "state=\"unloaded\"", static_cast<std::uint64_t>(r.unloaded));
  }
  if (in.cluster) {
    const ClusterMetrics& c = *in.cluster;
    w.family("kiln_cluster_compile_jobs_total", "counter", "This node's part in the shared compile queue, by event.");
    w.sample("kiln_cluster_compile_jobs_total", "event=\"enqueued\"", c.enqueued);
    w.sample("kiln_cluster_compile_jobs_total", "event=\"completed\"", c.completed);
    w.sample("kiln_cluster_compile_jobs_total", "event=\"reclaimed\"", c.reclaimed);
    w.sample("kiln_cluster_compile_jobs_total", "event=\"superseded\"", c.superseded);
    w.sample("kiln_cluster_compile_jobs_total", "event=\"abandoned\"", c.abandoned);
    w.family("kiln_cluster_queue_depth", "gauge", "Compile jobs in the shared queue, all nodes.");
    w.sample("kiln_cluster_queue_depth", "state=\"waiting\"", static_cast<std::uint64_t>(c.waiting));
    w.sample("kiln_cluster_queue_depth", "state=\"claimed\"", static_cast<std::uint64_t>(c.claimed));
  }

  w.family("kiln_http_responses_total", "counter", "HTTP answers, by status code.");
  for (std::size_t s = 100; s < http_.size(); ++s) {
    const auto n = http_[s].load(std::memory_order_relaxed);
    if (n) w.sample("kiln_http_responses_total", "code=\"" + std::to_string(s) + "\"", n);
  }
  const auto calls = [&](FrontEnd front_end, const char* name, const char* help, const char* method) {
    w.family(name, "counter", help);
    std::lock_guard lock(calls_mutex_);
    for (const auto& [key, n] : calls_)
      if (std::get<0>(key) == front_end)
        w.sample(name, std::string(method) + "=\"" + escape_label_value(std::get<1>(key)) + "\",code=\"" +
                           escape_label_value(std::get<2>(key)) + "\"",
                 n);
  };
  calls(FrontEnd::grpc, "kiln_grpc_requests_total", "gRPC calls answered, by method and status code.", "method");
  calls(FrontEnd::ipc, "kiln_ipc_requests_total", "IPC socket requests answered, by op and error code (ok: none).", "op");
  return w.str();
}

}  // namespace kiln::service
