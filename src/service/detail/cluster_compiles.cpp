#include "detail/cluster_compiles.hpp"

#include <unistd.h>


#include "kiln/driver/error.hpp"
#include "kiln/service/requests.hpp"

namespace kiln::service::detail {

using nlohmann::json;

std::string default_node_name() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "node");
  return std::string(host) + "-" + std::to_string(getpid());
}

ClusterCompiles::ClusterCompiles(RedisStreamQueue& queue, std::string node, int threads, std::uint32_t max_deliveries,
                                 jit::KernelCache& cache, const DeviceLibraries& libraries, Log log)
    : queue_(queue), node_(std::move(node)), max_deliveries_(max_deliveries), cache_(cache), libraries_(libraries),
      log_(std::move(log)) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this, i](std::stop_token stop) { consume(i, stop); });
  if (threads > 0) threads_.emplace_back([this](std::stop_token stop) { heartbeat(stop); });
}

ClusterCompiles::~ClusterCompiles() {
  for (auto& t : threads_) t.request_stop();
  threads_.clear();
}

ClusterCompiles::Outcome ClusterCompiles::compile(std::string_view tenant, std::string_view request_body,
                                                  const std::set<int>& archs, std::chrono::milliseconds timeout,
                                                  std::span<const DeviceLibraryEntry* const> libraries) {
  json payload = {{"tenant", tenant}, {"archs", archs}, {"request", request_body}};
  if (!libraries.empty()) {
    json libs = json::array();
    for (const DeviceLibraryEntry* lib : libraries) libs.push_back({{"name", lib->name()}, {"digest", lib->digest()}});
    payload["libraries"] = std::move(libs);
  }
  Outcome outcome;
  outcome.job = queue_.enqueue(payload.dump(), node_, tenant);
  enqueued_.fetch_add(1, std::memory_order_relaxed);
  std::optional<JobRecord> record = queue_.wait(outcome.job, timeout);
  if (!record) return outcome;
  outcome.compiled_by = (*record)["completed_by"];
  outcome.build = from_record(*record);
  return outcome;
}

KernelBuild ClusterCompiles::run(const StreamJob& job) {
  KernelBuild build;
  try {
    const json payload = json::parse(job.payload);
    Parsed<KernelRequest> parsed = parse_kernel_request(payload.at("request").get<std::string>());
    if (!parsed.ok()) {
      build.status = 400;
      build.error = {{"code", "bad_request"}, {"message", parsed.error().text()}, {"field", parsed.error().field}};
      return build;
    }
    // The libraries the accepting node resolved: this node links its own of the same name and
    // digest, or refuses (a node configured otherwise must not link something else).
    std::vector<const DeviceLibraryEntry*> libraries;
    const std::string tenant = payload.at("tenant").get<std::string>();
    for (const json& wanted : payload.value("libraries", json::array())) {
      const std::string name = wanted.at("name").get<std::string>();
      const DeviceLibraryEntry* lib = libraries_.find(name, tenant);
      if (!lib || lib->digest() != wanted.at("digest").get<std::string>()) {
        build.status = 503;
        build.error = {{"code", "library_unavailable"},
                       {"message", "node " + node_ + (lib ? " has another device library '" + name + "' (its files differ)"
                                                          : " has no device library '" + name + "' for this tenant") +
                                       "; every node sharing the queue needs the same device_libraries"}};
        return build;
      }
      libraries.push_back(lib);
    }
    return build_kernel(cache_, parsed.value().program, payload.at("archs").get<std::set<int>>(), libraries);
  } catch (const std::exception& e) {
    build.status = 500;
    build.error = {{"code", "internal"}, {"message", std::string("compile job ") + std::to_string(job.id) + ": " + e.what()}};
    return build;
  }
}

void ClusterCompiles::consume(int index, std::stop_token stop) {
  const std::string consumer = node_ + "/" + std::to_string(index);
  while (!stop.stop_requested()) {
    std::optional<StreamJob> job;
    try {
      job = queue_.claim(consumer, std::chrono::milliseconds(500));
    } catch (const Error& e) {
      log_.warn("cluster_queue_error", std::string("shared queue: ") + e.what() + " (retrying in 1 s)", {{"consumer", consumer}});
      std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }
    if (!job) continue;
    if (job->reclaimed) {
      reclaimed_.fetch_add(1, std::memory_order_relaxed);
      log_.warn("cluster_takeover",
                "compile job " + std::to_string(job->id) + " taken over from a node whose lease ran out (delivery " +
                    std::to_string(job->deliveries) + ")",
                {{"job", job->id}, {"origin", job->origin}, {"consumer", consumer}, {"deliveries", job->deliveries}});
    }
    {
      std::lock_guard lock(in_hand_mutex_);
      in_hand_.push_back({*job, consumer});
    }
    KernelBuild build;
    if (job->deliveries > max_deliveries_) {
      abandoned_.fetch_add(1, std::memory_order_relaxed);
      build.status = 500;
      build.error = {{"code", "compile_abandoned"},
                     {"message", "compile job " + std::to_string(job->id) + " was handed out " +
                                     std::to_string(job->deliveries) + " times and every node that took it stopped "
                                     "before finishing (crashed or was killed); it is not tried again"}};
    } else {
      build = run(*job);
    }
    {
      std::lock_guard lock(in_hand_mutex_);
      std::erase_if(in_hand_, [&](const InHand& h) { return h.job.entry == job->entry && h.consumer == consumer; });
    }
    try {
      if (queue_.complete(*job, consumer, to_record(build))) completed_.fetch_add(1, std::memory_order_relaxed);
      else superseded_.fetch_add(1, std::memory_order_relaxed);
    } catch (const Error& e) {
      // The lease runs out and another node redoes the job: nothing is lost, only time.
      log_.warn("cluster_queue_error", "cannot complete compile job " + std::to_string(job->id) + ": " + e.what(),
                {{"consumer", consumer}, {"job", job->id}});
    }
  }
}

void ClusterCompiles::heartbeat(std::stop_token stop) {
  std::mutex m;
  std::condition_variable_any cv;
  const auto period = std::max(std::chrono::milliseconds(20), queue_.options().lease / 3);
  while (!stop.stop_requested()) {
    {
      std::unique_lock lock(m);
      cv.wait_for(lock, stop, period, [] { return false; });
    }
    std::vector<InHand> jobs;
    {
      std::lock_guard lock(in_hand_mutex_);
      jobs = in_hand_;
    }
    for (const InHand& h : jobs) {
      try {
        queue_.extend(h.job, h.consumer);
      } catch (const Error& e) {
        log_.warn("cluster_queue_error", "cannot renew the lease of compile job " + std::to_string(h.job.id) + ": " + e.what(),
                  {{"consumer", h.consumer}, {"job", h.job.id}});
      }
    }
  }
}

ClusterMetrics ClusterCompiles::counters() {
  ClusterMetrics c;
  c.enqueued = enqueued_.load(std::memory_order_relaxed);
  c.completed = completed_.load(std::memory_order_relaxed);
  c.reclaimed = reclaimed_.load(std::memory_order_relaxed);
  c.superseded = superseded_.load(std::memory_order_relaxed);
  c.abandoned = abandoned_.load(std::memory_order_relaxed);
  try {
    const RedisStreamQueue::Depth d = queue_.depth();
    c.waiting = d.waiting;
    c.claimed = d.claimed;
  } catch (const Error&) {
    // Redis unreachable: the gauges stay 0; the consumers log it.
  }
  return c;
}

}  // namespace kiln::service::detail
