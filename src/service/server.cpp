#include "kiln/service/server.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <ctime>
#include <mutex>

#include <nlohmann/json.hpp>

#include "core/service_core.hpp"
#include "detail/error_body.hpp"
#include "detail/log_budget.hpp"
#include "detail/routes.hpp"
#include "http/transport.hpp"
#include "status/status_assets.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/service/requests.hpp"
#include "kiln/service/scheduler.hpp"

namespace kiln::service {

namespace {

using nlohmann::json;
using http::Request;
using http::Response;

// The routes as the OpenAPI document spells them (Server::routes()), from the table the router uses.
constexpr auto kRoutes = [] {
  std::array<Route, detail::kRouteTable.size()> out{};
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = {detail::kRouteTable[i].method, detail::kRouteTable[i].path};
  return out;
}();

void send_json(Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(detail::json_text(body), "application/json");
}

void send_error(Response& res, int status, std::string_view code, std::string_view message, const json& extra = nullptr) {
  res.status = status;
  res.set_content(detail::error_body(code, message, extra), "application/json");
}

// A query parameter as an unsigned number, or nullopt (and a 400 sent) when malformed.
std::optional<std::uint64_t> query_number(const Request& req, Response& res, const char* name, std::uint64_t fallback) {
  if (!req.has_param(name)) return fallback;
  const std::string_view text = req.param_value(name);
  const std::optional<std::uint64_t> value = detail::parse_id(text);
  if (!value) {
    send_error(res, 400, "bad_request",
               std::string("query parameter '") + name + "': expected a non-negative integer below 2^64, got '" +
                   detail::printable(text, 40) + "'",
               {{"field", name}});
    return std::nullopt;
  }
  return value;
}

std::string what_of(std::exception_ptr ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
  }
  return "unknown exception";
}

// The route's {id}; on_head() answered 404 already when it does not fit in 64 bits.
std::uint64_t path_id(const Request& req) { return detail::match_route(req.method, req.path).id.value_or(0); }
std::string path_name(const Request& req) { return std::string(detail::match_route(req.method, req.path).name); }

std::string utc_text(std::chrono::system_clock::time_point t) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

json package_json(const core::RepositoryPackage& p) {
  json versions = json::array();
  for (const core::RepositoryVersion& v : p.versions) {
    json j = {{"version", v.version},
              {"state", std::string(core::to_string(v.state))},
              {"serving", v.serving},
              {"entry_points", v.entry_points},
              {"images", v.images},
              {"since", utc_text(v.since)}};
    if (v.state == core::VersionState::ready) j["load_ms"] = v.load_ms;
    if (!v.problem.empty()) j["problem"] = v.problem, j["reason"] = v.reason;
    versions.push_back(std::move(j));
  }
  return {{"name", p.name},
          {"serving", p.serving ? json(*p.serving) : json(nullptr)},
          {"previous", p.previous ? json(*p.previous) : json(nullptr)},
          {"held", p.held},
          {"versions", versions}};
}

json device_json(const DeviceStatus& d) {
  return {{"ordinal", d.ordinal},           {"name", d.name},
          {"uuid", d.uuid},                 {"pci_bus_id", d.pci_bus_id},
          {"arch", d.arch},                 {"memory_total", d.memory_total},
          {"memory_free", d.memory_free},   {"worker_up", d.worker_up},
          {"circuit_open", d.circuit_open}, {"worker_restarts", d.worker_restarts},
          {"watchdog_kills", d.watchdog_kills}, {"last_failure", d.last_failure}};
}

std::string_view to_string(JobState state) {
  switch (state) {
    case JobState::queued: return "queued";
    case JobState::running: return "running";
    case JobState::finished: return "finished";
  }
  return "unknown";
}

json job_json(const JobSnapshot& s) {
  json j = {{"id", s.id},
            {"request_id", s.request_id},
            {"state", to_string(s.state)},
            {"device", s.device},
            {"priority", std::string(to_string(s.priority))},
            {"queued_ms", s.queued_ms},
            {"total_ms", s.total_ms}};
  if (!s.package.empty()) j["package"] = {{"name", s.package}, {"version", s.package_version}};
  if (s.state == JobState::finished) {
    j["status"] = std::string(to_string(s.outcome));
    j["elapsed_ms"] = s.result.elapsed_ms;
    if (s.outcome != JobOutcome::completed) {
      j["error"] = {{"name", s.result.error_name}, {"message", s.result.message}, {"sticky", s.result.sticky}};
      j["suspect_buffers"] = s.result.suspect_buffers;
    }
  }
  return j;
}

int status_of(const JobSnapshot& s) {
  if (s.state != JobState::finished) return 202;
  switch (s.outcome) {
    case JobOutcome::completed: return 200;
    case JobOutcome::failed: return 422;
    case JobOutcome::timed_out: return 504;
    case JobOutcome::device_unavailable:
    case JobOutcome::cancelled: return 503;
  }
  return 500;
}

// The refusals an operator wants to see, each at its level; the request's id and tenant come from
// the LogContext of the thread serving it. Never the source or its diagnostics (NVRTC quotes
// source lines): the rule, the count, kiln's words on memory.
void log_service_error(const Log& log, const core::ServiceError& e) {
  using core::ErrorKind;
  switch (e.kind) {
    case ErrorKind::policy:
      log.warn("policy_refused", "the source policy refused a kernel (rule " + e.rule + ")", {{"rule", e.rule}});
      break;
    case ErrorKind::compile_failed: {
      const json& d = e.details.is_object() && e.details.contains("diagnostics") ? e.details["diagnostics"] : json();
      const bool link = e.details.is_object() && e.details.value("stage", "") == "link";
      log.info("compile_failed", link ? "nvJitLink refused a kernel's link with its libraries" : "NVRTC refused a kernel",
               {{"diagnostics", static_cast<std::uint64_t>(d.is_array() ? d.size() : 0)}});
      break;
    }
    case ErrorKind::library_unavailable:
      // The operator's to fix: nvJitLink missing, or the nodes of a cluster configured apart.
      log.warn("library_unavailable", e.message);
      break;
    case ErrorKind::out_of_memory: {
      LogFields fields;
      for (const char* key : {"device", "requested", "free", "total", "in_use"})
        if (e.details.is_object() && e.details.contains(key) && e.details[key].is_number_integer())
          fields.emplace_back(key, e.details[key].get<std::int64_t>());
      log.warn("oom_refused", e.message, fields);
      break;
    }
    case ErrorKind::too_many_compiles:
    case ErrorKind::compile_busy:
    case ErrorKind::queue_full:
      log.info("admission_refused", e.message, {{"kind", std::string(core::to_string(e.kind))}});
      break;
    case ErrorKind::internal:
      log.error("internal_error", e.message);
      break;
    default:
      break;
  }
}

// A core error as an HTTP answer: the status and code the API documents for its kind, the error
// body of src/service/detail/error_body.*, and the kind's members (a rule, a field, details).
void send_service_error(Response& res, const core::ServiceError& e) {
  using core::ErrorKind;
  int status = 500;
  const std::string_view code = core::api_error_code(e.kind);
  switch (e.kind) {
    case ErrorKind::not_found: status = 404; break;
    case ErrorKind::invalid_argument: status = 400; break;
    case ErrorKind::too_large: status = 413; break;
    case ErrorKind::policy: status = 422; break;
    case ErrorKind::compile_failed: status = 422; break;
    case ErrorKind::too_many_kernels: status = 429; break;
    case ErrorKind::too_many_regions: status = 429; break;
    case ErrorKind::too_many_compiles: status = 429; break;
    case ErrorKind::compile_busy:
      status = 503;
      res.set_header("Retry-After", "1");
      break;
    case ErrorKind::compile_pending: status = 504; break;
    case ErrorKind::queue_full: status = 429; break;
    case ErrorKind::shutting_down: status = 503; break;
    case ErrorKind::out_of_memory: status = 507; break;
    case ErrorKind::out_of_host_memory: status = 503; break;
    case ErrorKind::unavailable: status = 503; break;
    case ErrorKind::forbidden: status = 403; break;
    case ErrorKind::library_unavailable: status = 503; break;
    case ErrorKind::not_serving:
      status = 503;
      res.set_header("Retry-After", "1");
      break;
    case ErrorKind::package_refused: status = 422; break;
    case ErrorKind::internal: status = 500; break;
  }
  const json extra = core::error_members(e);
  send_error(res, status, code, e.message, extra.empty() ? json(nullptr) : extra);
}

// ?after= and ?limit= of a list route (limit above core::kMaxPageSize is cut to it), or nullopt
// with a 400 sent.
std::optional<core::PageRequest> page_request(const Request& req, Response& res) {
  auto after = query_number(req, res, "after", 0);
  if (!after) return std::nullopt;
  auto limit = query_number(req, res, "limit", core::kDefaultPageSize);
  if (!limit) return std::nullopt;
  if (*limit == 0) {
    send_error(res, 400, "bad_request", "query parameter 'limit': must be at least 1", {{"field", "limit"}});
    return std::nullopt;
  }
  return core::PageRequest{*after, static_cast<std::size_t>(std::min<std::uint64_t>(*limit, core::kMaxPageSize))};
}

template <class T, class F>
json page_json(const char* name, const core::Page<T>& page, F item_json) {
  json items = json::array();
  for (const T& item : page.items) items.push_back(item_json(item));
  json body = {{name, items}};
  body["next_after"] = page.next_after ? json(*page.next_after) : json(nullptr);
  return body;
}

json kernel_json(const core::KernelInfo& k) {
  json targets = json::array();
  for (const core::KernelTarget& t : k.targets) targets.push_back({{"arch", t.arch}, {"kind", t.kind}});
  return {{"id", k.id}, {"name", k.name}, {"lowered_names", k.lowered_names}, {"targets", targets}, {"libraries", k.libraries}};
}

json library_json(const core::LibraryInfo& l) {
  json prebuilt = nullptr, source = nullptr;
  if (l.prebuilt_arch) prebuilt = {{"arch", "sm_" + std::to_string(*l.prebuilt_arch)}, {"bytes", l.ltoir_bytes}};
  if (l.source_bytes > 0) source = {{"bytes", l.source_bytes}};
  return {{"name", l.name}, {"prebuilt", prebuilt}, {"source", source}, {"headers", l.headers}};
}

json buffer_json(const core::BufferInfo& b) {
  return {{"id", b.id}, {"device", b.device}, {"bytes", b.bytes}, {"tag", b.tag}};
}

json failure_json(const RecentFailure& f) {
  return {{"time", utc_timestamp(f.time)},
          {"source", f.source},
          {"tenant", f.tenant.empty() ? json(nullptr) : json(f.tenant)},
          {"request_id", f.request_id},
          {"device", f.device ? json(*f.device) : json(nullptr)},
          {"job", f.job ? json(f.job) : json(nullptr)},
          {"error", f.error},
          {"message", f.message},
          {"explanation", f.explanation},
          {"hint", f.hint}};
}

json status_json(const core::ServiceStatus& s) {
  json devices = json::array();
  for (const DeviceStatus& d : s.devices) {
    json j = device_json(d);
    j["memory_used"] = d.memory_total >= d.memory_free ? d.memory_total - d.memory_free : 0;
    const auto held = s.buffer_bytes_by_device.find(d.ordinal);
    j["buffer_bytes"] = held == s.buffer_bytes_by_device.end() ? 0 : held->second;
    devices.push_back(std::move(j));
  }
  json depth = json::object();
  for (std::size_t p = 0; p < kPriorityCount; ++p) depth[std::string(to_string(static_cast<Priority>(p)))] = s.queue_depth[p];
  json totals = json::object();
  for (std::size_t o = 0; o < kJobOutcomeCount; ++o) totals[std::string(to_string(static_cast<JobOutcome>(o)))] = s.launches_total[o];
  const LaunchWindow& w = s.recent;
  const std::uint64_t misses = s.cache.compiles + s.cache.compile_failures;
  const std::uint64_t hits = s.cache.memory_hits + s.cache.disk_hits;
  json failures = json::array();
  for (const RecentFailure& f : s.failures) failures.push_back(failure_json(f));
  json body = {
      {"node", s.node},
      {"uptime_s", s.uptime_s},
      {"draining", s.draining},
      {"ready", s.ready},
      {"reason", s.why_not_ready},
      {"gpu", {{"available", s.gpu_available}, {"reason", s.no_gpu_reason}}},
      {"devices", devices},
      {"queue", {{"depth", depth}, {"running", s.jobs_running}}},
      {"launches",
       {{"total", totals},
        {"window_s", w.window_s},
        {"in_window", w.launches},
        {"per_second", w.launches_per_second},
        {"latency_ms", {{"samples", w.samples}, {"p50", w.p50_ms}, {"p90", w.p90_ms}, {"p99", w.p99_ms}, {"max", w.max_ms}}}}},
      {"kernels", {{"registered", s.kernels}, {"compiles_running", s.compiles_running}, {"compiles_waiting", s.compiles_waiting}}},
      {"cache",
       {{"memory_hits", s.cache.memory_hits},
        {"disk_hits", s.cache.disk_hits},
        {"misses", misses},
        {"compiles", s.cache.compiles},
        {"compile_failures", s.cache.compile_failures},
        {"hit_rate", hits + misses ? json(static_cast<double>(hits) / static_cast<double>(hits + misses)) : json(nullptr)},
        {"memory_entries", s.cache.memory_entries},
        {"memory_bytes", s.cache.memory_bytes}}},
      {"topology", {{"available", s.topology_known}, {"reason", s.topology_reason}, {"svg", "/v1/status/topology.svg"}}},
      {"failures", failures}};
  if (s.cluster) {
    const ClusterMetrics& c = *s.cluster;
    body["cluster"] = {{"enqueued", c.enqueued},   {"completed", c.completed}, {"reclaimed", c.reclaimed},
                       {"superseded", c.superseded}, {"abandoned", c.abandoned}, {"waiting", c.waiting},
                       {"claimed", c.claimed}};
  } else {
    body["cluster"] = nullptr;
  }
  return body;
}

// The status page's files: only kilnd's own scripts, styles and connections, no inline script or
// style, no frame, no form posted elsewhere (the SVG is put in by script, parsed and cleaned).
constexpr const char* kStatusPagePolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

void send_static(Response& res, std::string_view body, const char* type) {
  res.status = 200;
  res.set_content(std::string(body), type);
  res.set_header("Content-Security-Policy", kStatusPagePolicy);
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_header("X-Frame-Options", "DENY");
  res.set_header("Cache-Control", "no-cache");
}

json shared_memory_json(const core::SharedMemoryInfo& r) {
  json j = {{"id", r.id}, {"name", r.name}, {"offset", r.offset}, {"bytes", r.bytes}, {"pinned", r.pinned}};
  if (r.owner_pid != 0) j["owner_pid"] = r.owner_pid;
  return j;
}

}  // namespace

struct Server::Impl final : http::Handler {
  using Route = void (Impl::*)(const Request&, Response&, const std::string& tenant);

  Impl(ServiceConfig c, TokenStore t, GpuBackend& b, std::shared_ptr<const topology::Topology> topo, Log l)
      : log(std::move(l)), tokens(std::move(t)), core(std::move(c), b, std::move(topo), log),
        transport(transport_options(core.config()), *this) {}

  static http::TransportOptions transport_options(const ServiceConfig& c) {
    http::TransportOptions o;
    o.address = c.listen_address;
    o.port = c.port;
    o.io_threads = c.http_io_threads;
    o.handler_threads = c.http_threads;
    o.handler_spin = c.spin;
    o.max_connections = c.max_connections;
    o.max_connections_per_client = c.max_connections_per_client;
    o.header_timeout = c.header_timeout;
    o.idle_timeout = c.idle_timeout;
    o.body_timeout = c.body_timeout;
    o.min_body_rate = c.min_body_rate;
    o.write_timeout = c.write_timeout;
    o.max_body_bytes = c.max_body_bytes;
    return o;
  }

  Log log;
  static constexpr unsigned kAuthLinesPerSecond = 10;
  detail::LogBudget auth_log_budget{kAuthLinesPerSecond};
  TokenStore tokens;
  core::ServiceCore core;
  const ServiceConfig& config = core.config();
  http::Transport transport;
  std::mutex stop_mutex;
  bool started = false, stopped = false;

  http::HeadVerdict on_head(const Request& head, const detail::Framing& framing) noexcept override;
  Response serve(Request& request, http::HeadVerdict& verdict) noexcept override;
  void answered(const http::Exchange& exchange) noexcept override;

  // A core error answered, and logged when it is one an operator wants to see.
  void refuse(Response& res, const core::ServiceError& e) {
    log_service_error(log, e);
    send_service_error(res, e);
  }

  // The tenant of the request's token, or nullopt with the 401 in `res`.
  std::optional<std::string> authenticate(const Request& req, Response& res);
  bool json_size_ok(const Request& req, Response& res);

  void healthz(const Request&, Response&, const std::string&);
  void readyz(const Request&, Response&, const std::string&);
  void metrics_text(const Request&, Response&, const std::string&);
  void create_kernel(const Request&, Response&, const std::string&);
  void list_kernels(const Request&, Response&, const std::string&);
  void get_kernel(const Request&, Response&, const std::string&);
  void delete_kernel(const Request&, Response&, const std::string&);
  void create_buffer(const Request&, Response&, const std::string&);
  void list_buffers(const Request&, Response&, const std::string&);
  void get_buffer(const Request&, Response&, const std::string&);
  void delete_buffer(const Request&, Response&, const std::string&);
  void upload(const Request&, Response&, const std::string&);
  void download(const Request&, Response&, const std::string&);
  void copy_shared_memory(const Request&, Response&, const std::string&);
  void register_shared_memory(const Request&, Response&, const std::string&);
  void list_shared_memory(const Request&, Response&, const std::string&);
  void get_shared_memory(const Request&, Response&, const std::string&);
  void unregister_shared_memory(const Request&, Response&, const std::string&);
  void launch(const Request&, Response&, const std::string&);
  void list_jobs(const Request&, Response&, const std::string&);
  void get_job(const Request&, Response&, const std::string&);
  void list_libraries(const Request&, Response&, const std::string&);
  void status_page(const Request&, Response&, const std::string&);
  void status_script(const Request&, Response&, const std::string&);
  void status_style(const Request&, Response&, const std::string&);
  void status(const Request&, Response&, const std::string&);
  void status_topology(const Request&, Response&, const std::string&);
  void repository_index(const Request&, Response&, const std::string&);
  void repository_package(const Request&, Response&, const std::string&);
  void load_package(const Request&, Response&, const std::string&);
  void unload_package(const Request&, Response&, const std::string&);
  void rollback_package(const Request&, Response&, const std::string&);
  // A repository control request's body ({"version"?}), or nullopt with the 400 in `res`.
  std::optional<PackageVersionRequest> package_version(const Request& req, Response& res);

  // Each route's handler, in detail::kRouteTable's order: whether it needs a tenant's token, and
  // whether it may block (compile, touch a GPU, wait), which serves it on the transport's handler
  // pool instead of an I/O thread. Readiness and metrics read the devices from the backend's
  // cached state and answer at once, so that probes are answered while every handler is busy.
  struct RouteHandler {
    Route route;
    bool needs_tenant;
    bool may_block;
  };
  static constexpr std::array<RouteHandler, detail::kRouteTable.size()> kHandlers = {{
      {&Impl::healthz, false, false},      {&Impl::readyz, false, false},       {&Impl::metrics_text, false, false},
      {&Impl::create_kernel, true, true},  {&Impl::list_kernels, true, false},  {&Impl::get_kernel, true, false},
      {&Impl::delete_kernel, true, false}, {&Impl::create_buffer, true, true},  {&Impl::list_buffers, true, false},
      {&Impl::get_buffer, true, false},    {&Impl::delete_buffer, true, true},  {&Impl::upload, true, true},
      {&Impl::download, true, true},       {&Impl::launch, true, true},         {&Impl::list_jobs, true, false},
      {&Impl::get_job, true, true},        {&Impl::copy_shared_memory, true, true},
      {&Impl::register_shared_memory, true, true}, {&Impl::list_shared_memory, true, false},
      {&Impl::get_shared_memory, true, false},     {&Impl::unregister_shared_memory, true, true},
      {&Impl::list_libraries, true, false},
      {&Impl::status_page, false, false},  {&Impl::status_script, false, false},
      {&Impl::status_style, false, false}, {&Impl::status, true, false},        {&Impl::status_topology, true, false},
      {&Impl::repository_index, true, false},      {&Impl::repository_package, true, false},
      {&Impl::load_package, true, true},           {&Impl::unload_package, true, false},
      {&Impl::rollback_package, true, false},
  }};
};

http::HeadVerdict Server::Impl::on_head(const Request& req, const detail::Framing& framing) noexcept {
  http::HeadVerdict verdict;
  try {
    const LogContext context(req.request_id, {});
    auto answer = [&](Response res) {
      verdict.answer = std::move(res);
      return std::move(verdict);
    };
    Response res;
    const detail::RouteMatch match = detail::match_route(req.method, req.path);
    if (match.result == detail::RouteResult::no_route) {
      send_error(res, 404, "not_found",
                 "no route for " + detail::printable(req.method, 16) + " " + detail::printable(req.path, 256));
      return answer(std::move(res));
    }
    if (match.result == detail::RouteResult::wrong_method) {
      res.set_header("Allow", match.allowed);
      send_error(res, 405, "method_not_allowed",
                 detail::printable(req.path, 256) + " answers " + match.allowed + ", not " + detail::printable(req.method, 16));
      return answer(std::move(res));
    }
    const RouteHandler& route = kHandlers[match.index];
    if (route.needs_tenant) {
      auto who = authenticate(req, res);  // nothing of an unauthenticated body is read
      if (!who) return answer(std::move(res));
      verdict.context = std::move(*who);
    }
    const detail::RouteSpec& spec = detail::kRouteTable[match.index];
    if (match.has_id && !match.id) {
      // More digits than any id has: no such thing exists, for any tenant.
      send_error(res, 404, "not_found", std::string(detail::id_noun(spec)) + " " + detail::printable(match.id_text, 40) + " not found");
      return answer(std::move(res));
    }
    if (route.needs_tenant && core.draining()) {
      send_error(res, 503, "shutting_down", "the service is shutting down");
      return answer(std::move(res));
    }
    // A JSON body (and the body of a DELETE, which kilnd ignores) is held up to max_json_bytes; an
    // upload up to max_body_bytes.
    const bool bytes = spec.body == detail::BodyKind::bytes;
    verdict.body_limit = bytes ? config.max_body_bytes : config.max_json_bytes;
    verdict.limit_name = bytes ? "max_body_bytes" : "max_json_bytes";
    // A job read without wait_ms answers at once.
    verdict.may_block = route.may_block && !(route.route == &Impl::get_job && !req.has_param("wait_ms"));
    (void)framing;
  } catch (...) {
    Response res;
    send_error(res, 500, "internal", "internal error while checking the request: " + what_of(std::current_exception()));
    verdict.answer = std::move(res);
  }
  return verdict;
}

std::optional<std::string> Server::Impl::authenticate(const Request& req, Response& res) {
  auto [tenant, refusal] = tokens.check_bearer(req.header_value("Authorization"), "Authorization", "header");
  if (!tenant) {
    // The reason only: never the token or the header that carried it.
    // Anyone can send bad tokens: at most kAuthLinesPerSecond lines, the rest counted in the next.
    if (const auto left_out = auth_log_budget.take()) {
      LogFields fields{{"method", detail::printable(req.method, 16)}, {"path", detail::printable(req.path, 256)}};
      if (*left_out > 0) fields.emplace_back("suppressed", *left_out);
      log.warn("auth_refused", refusal, fields);
    }
    res.set_header("WWW-Authenticate", "Bearer realm=\"kilnd\"");
    send_error(res, 401, "unauthorized", refusal);
  }
  return tenant;
}

Response Server::Impl::serve(Request& req, http::HeadVerdict& verdict) noexcept {
  Response res;
  const LogContext context(req.request_id, verdict.context);
  try {
    const detail::RouteMatch match = detail::match_route(req.method, req.path);
    (this->*kHandlers[match.index].route)(req, res, verdict.context);
  } catch (...) {
    // The core answers typed errors; what is thrown here is the front end's own (or a bug): the
    // answer says what was thrown and the server stays up.
    try {
      res = Response{};
      refuse(res, core::error_from_exception(std::current_exception()));
    } catch (...) {
      res.status = 500;
      res.body.clear();
      res.content_type.clear();
    }
  }
  return res;
}

bool Server::Impl::json_size_ok(const Request& req, Response& res) {
  if (req.body.size() <= config.max_json_bytes) return true;
  send_error(res, 413, "payload_too_large",
             "the JSON body has " + std::to_string(req.body.size()) + " bytes; the limit (max_json_bytes) is " +
                 std::to_string(config.max_json_bytes));
  return false;
}

void Server::Impl::healthz(const Request&, Response& res, const std::string&) {
  send_json(res, 200, {{"status", core.draining() ? "draining" : "ok"}});
}

void Server::Impl::readyz(const Request&, Response& res, const std::string&) {
  const core::Readiness r = core.readiness();
  json body = {{"ready", r.why_not.empty()}, {"devices", json::array()}};
  for (const DeviceStatus& d : r.devices) body["devices"].push_back(device_json(d));
  if (!r.why_not.empty()) body["reason"] = r.why_not;
  send_json(res, r.why_not.empty() ? 200 : 503, body);
}

void Server::Impl::metrics_text(const Request&, Response& res, const std::string&) {
  res.status = 200;
  res.set_content(core.metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
}

void Server::Impl::create_kernel(const Request& req, Response& res, const std::string& tenant) {
  if (!json_size_ok(req, res)) return;
  Parsed<KernelRequest> parsed = parse_kernel_request(req.body, core.request_limits());
  if (!parsed.ok()) return send_error(res, 400, "bad_request", parsed.error().text(), {{"field", parsed.error().field}});
  auto k = core.register_kernel(tenant, std::move(parsed.value()), req.body);
  if (!k) return refuse(res, k.error());
  res.set_header("Location", "/v1/kernels/" + std::to_string(k->id));
  json answer = {{"id", k->id},           {"name", k->name},         {"lowered_names", k->lowered_names},
                 {"targets", k->targets}, {"warnings", k->warnings}, {"libraries", k->libraries}};
  if (!k->compiled_by.empty()) answer["compiled_by"] = k->compiled_by;
  send_json(res, 201, answer);
}

void Server::Impl::list_libraries(const Request&, Response& res, const std::string& tenant) {
  json items = json::array();
  for (const core::LibraryInfo& l : core.libraries(tenant)) items.push_back(library_json(l));
  send_json(res, 200, {{"libraries", items}});
}

void Server::Impl::repository_index(const Request&, Response& res, const std::string& tenant) {
  json packages = json::array();
  for (const core::RepositoryPackage& p : core.repository_index(tenant)) packages.push_back(package_json(p));
  const auto* repository = core.repository();
  send_json(res, 200, {{"enabled", repository != nullptr},
                       {"mode", repository ? std::string(to_string(repository->config().mode)) : "none"},
                       {"packages", packages}});
}

void Server::Impl::repository_package(const Request& req, Response& res, const std::string& tenant) {
  auto p = core.repository_package(tenant, path_name(req));
  if (!p) return refuse(res, p.error());
  send_json(res, 200, package_json(p.value()));
}

std::optional<PackageVersionRequest> Server::Impl::package_version(const Request& req, Response& res) {
  if (!json_size_ok(req, res)) return std::nullopt;
  Parsed<PackageVersionRequest> parsed = parse_package_version_request(req.body, core.request_limits());
  if (!parsed.ok()) {
    send_error(res, 400, "bad_request", parsed.error().text(), {{"field", parsed.error().field}});
    return std::nullopt;
  }
  return parsed.value();
}

void Server::Impl::load_package(const Request& req, Response& res, const std::string& tenant) {
  auto body = package_version(req, res);
  if (!body) return;
  auto p = core.load_package(tenant, path_name(req), body->version);
  if (!p) return refuse(res, p.error());
  send_json(res, 200, package_json(p.value()));
}

void Server::Impl::unload_package(const Request& req, Response& res, const std::string& tenant) {
  auto body = package_version(req, res);
  if (!body) return;
  auto p = core.unload_package(tenant, path_name(req), body->version);
  if (!p) return refuse(res, p.error());
  send_json(res, 200, package_json(p.value()));
}

void Server::Impl::rollback_package(const Request& req, Response& res, const std::string& tenant) {
  auto body = package_version(req, res);
  if (!body) return;
  if (body->version) return send_error(res, 400, "bad_request", "version: a rollback returns to the previous version; "
                                                                "POST .../load with a version serves any other", {{"field", "version"}});
  auto p = core.rollback_package(tenant, path_name(req));
  if (!p) return refuse(res, p.error());
  send_json(res, 200, package_json(p.value()));
}

void Server::Impl::list_kernels(const Request& req, Response& res, const std::string& tenant) {
  auto page = page_request(req, res);
  if (!page) return;
  send_json(res, 200, page_json("kernels", core.list_kernels(tenant, *page), kernel_json));
}

void Server::Impl::get_kernel(const Request& req, Response& res, const std::string& tenant) {
  auto k = core.kernel(tenant, path_id(req));
  if (!k) return refuse(res, k.error());
  send_json(res, 200, kernel_json(k.value()));
}

void Server::Impl::delete_kernel(const Request& req, Response& res, const std::string& tenant) {
  auto done = core.delete_kernel(tenant, path_id(req));
  if (!done) return refuse(res, done.error());
  res.status = 204;
}

void Server::Impl::create_buffer(const Request& req, Response& res, const std::string& tenant) {
  if (!json_size_ok(req, res)) return;
  Parsed<BufferRequest> parsed = parse_buffer_request(req.body, core.request_limits());
  if (!parsed.ok()) return send_error(res, 400, "bad_request", parsed.error().text(), {{"field", parsed.error().field}});
  auto b = core.create_buffer(tenant, parsed.value());
  if (!b) return refuse(res, b.error());
  res.set_header("Location", "/v1/buffers/" + std::to_string(b->id));
  send_json(res, 201, buffer_json(b.value()));
}

void Server::Impl::list_buffers(const Request& req, Response& res, const std::string& tenant) {
  auto page = page_request(req, res);
  if (!page) return;
  send_json(res, 200, page_json("buffers", core.list_buffers(tenant, *page), buffer_json));
}

void Server::Impl::get_buffer(const Request& req, Response& res, const std::string& tenant) {
  auto b = core.buffer(tenant, path_id(req));
  if (!b) return refuse(res, b.error());
  send_json(res, 200, buffer_json(b.value()));
}

void Server::Impl::delete_buffer(const Request& req, Response& res, const std::string& tenant) {
  auto done = core.delete_buffer(tenant, path_id(req));
  if (!done) return refuse(res, done.error());
  res.status = 204;
}

void Server::Impl::upload(const Request& req, Response& res, const std::string& tenant) {
  // A missing buffer is answered before a malformed offset, as before the core existed.
  if (auto b = core.buffer(tenant, path_id(req)); !b) return refuse(res, b.error());
  auto offset = query_number(req, res, "offset", 0);
  if (!offset) return;
  auto done = core.write_buffer(tenant, path_id(req), *offset, std::as_bytes(std::span(req.body.data(), req.body.size())));
  if (!done) return refuse(res, done.error());
  send_json(res, 200, {{"written", req.body.size()}, {"offset", *offset}});
}

void Server::Impl::copy_shared_memory(const Request& req, Response& res, const std::string& tenant) {
  if (!json_size_ok(req, res)) return;
  Parsed<SharedMemoryCopyRequest> parsed = parse_shared_memory_copy_request(req.body, core.request_limits());
  if (!parsed.ok()) return send_error(res, 400, "bad_request", parsed.error().text(), {{"field", parsed.error().field}});
  auto copied = core.copy_shared_memory(tenant, path_id(req), parsed.value());
  if (!copied) return refuse(res, copied.error());
  send_json(res, 200, {{"bytes", copied.value()}, {"direction", parsed.value().upload ? "upload" : "download"}});
}

void Server::Impl::register_shared_memory(const Request& req, Response& res, const std::string& tenant) {
  if (!json_size_ok(req, res)) return;
  Parsed<SharedMemoryRequest> parsed = parse_shared_memory_request(req.body, core.request_limits());
  if (!parsed.ok()) return send_error(res, 400, "bad_request", parsed.error().text(), {{"field", parsed.error().field}});
  auto r = core.register_shared_memory(tenant, parsed.value());
  if (!r) return refuse(res, r.error());
  res.set_header("Location", "/v1/shm/" + std::to_string(r->id));
  send_json(res, 201, shared_memory_json(r.value()));
}

void Server::Impl::list_shared_memory(const Request& req, Response& res, const std::string& tenant) {
  auto page = page_request(req, res);
  if (!page) return;
  send_json(res, 200, page_json("regions", core.list_shared_memory(tenant, *page), shared_memory_json));
}

void Server::Impl::get_shared_memory(const Request& req, Response& res, const std::string& tenant) {
  auto r = core.shared_memory(tenant, path_id(req));
  if (!r) return refuse(res, r.error());
  send_json(res, 200, shared_memory_json(r.value()));
}

void Server::Impl::unregister_shared_memory(const Request& req, Response& res, const std::string& tenant) {
  auto done = core.unregister_shared_memory(tenant, path_id(req));
  if (!done) return refuse(res, done.error());
  res.status = 204;
}

void Server::Impl::download(const Request& req, Response& res, const std::string& tenant) {
  if (auto b = core.buffer(tenant, path_id(req)); !b) return refuse(res, b.error());
  auto offset = query_number(req, res, "offset", 0);
  if (!offset) return;
  std::optional<std::uint64_t> bytes;
  if (req.has_param("bytes")) {
    bytes = query_number(req, res, "bytes", 0);
    if (!bytes) return;
  }
  auto data = core.read_buffer(tenant, path_id(req), *offset, bytes);
  if (!data) return refuse(res, data.error());
  res.status = 200;
  res.set_content(std::move(data.value()), "application/octet-stream");
}

void Server::Impl::launch(const Request& req, Response& res, const std::string& tenant) {
  const Clock::time_point entered = Clock::now();
  if (!json_size_ok(req, res)) return;
  Parsed<LaunchRequest> parsed = parse_launch_request(req.body, core.request_limits());
  if (!parsed.ok()) return send_error(res, 400, "bad_request", parsed.error().text(), {{"field", parsed.error().field}});
  auto launched = core.launch(tenant, std::move(parsed.value()), req.request_id);
  if (!launched) return refuse(res, launched.error());
  const core::LaunchOutcome& out = launched.value();
  res.set_header("Location", "/v1/jobs/" + std::to_string(out.job.id));
  // Where the request's time went, for clients and benchmarks (W3C Server-Timing, milliseconds):
  // from the transport's read to the handler (the hand-off), checking it (parse, lookups,
  // placement), from submission to the answer (queue and launch), and the GPU backend's part of that.
  const Clock::time_point answered = Clock::now();
  auto ms = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  char timing[192];
  std::snprintf(timing, sizeof timing, "check;dur=%.3f, run;dur=%.3f, total;dur=%.3f, handoff;dur=%.3f, gpu;dur=%.3f",
                ms(entered, out.checked), ms(out.checked, answered), ms(entered, answered), ms(req.read_at, entered),
                out.job.result.elapsed_ms);
  res.set_header("Server-Timing", timing);
  send_json(res, out.waited ? status_of(out.job) : 202, job_json(out.job));
}

void Server::Impl::list_jobs(const Request& req, Response& res, const std::string& tenant) {
  auto page = page_request(req, res);
  if (!page) return;
  send_json(res, 200, page_json("jobs", core.list_jobs(tenant, *page), job_json));
}

void Server::Impl::get_job(const Request& req, Response& res, const std::string& tenant) {
  auto wait_ms = query_number(req, res, "wait_ms", 0);
  if (!wait_ms) return;
  auto job = core.job(tenant, path_id(req), std::chrono::milliseconds(std::min<std::uint64_t>(*wait_ms, 1u << 30)));
  if (!job) return refuse(res, job.error());
  send_json(res, 200, job_json(job.value()));
}

// The page shell and its files need no token (they hold no data); the data needs one.
void Server::Impl::status_page(const Request&, Response& res, const std::string&) {
  send_static(res, status::index_html(), "text/html; charset=utf-8");
}

void Server::Impl::status_script(const Request&, Response& res, const std::string&) {
  send_static(res, status::app_js(), "text/javascript; charset=utf-8");
}

void Server::Impl::status_style(const Request&, Response& res, const std::string&) {
  send_static(res, status::app_css(), "text/css; charset=utf-8");
}

void Server::Impl::status(const Request&, Response& res, const std::string& tenant) {
  res.set_header("Cache-Control", "no-store");
  send_json(res, 200, status_json(core.status(tenant)));
}

void Server::Impl::status_topology(const Request&, Response& res, const std::string&) {
  res.status = 200;
  res.set_content(core.topology_svg(), "image/svg+xml");
  res.set_header("Cache-Control", "no-store");
  res.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'");
  res.set_header("X-Content-Type-Options", "nosniff");
}

// Each request once: what it was, who sent it, what it got, how long it took. Answers of 500 and
// above are warnings; the rest is info.
void Server::Impl::answered(const http::Exchange& e) noexcept {
  try {
    core.http_answered(e.status);
    const LogLevel level = e.status >= 500 ? LogLevel::warn : LogLevel::info;
    if (!log.enabled(level)) return;
    std::string route;
    if (!e.method.empty()) {
      const detail::RouteMatch match = detail::match_route(e.method, e.path);
      route = match.result == detail::RouteResult::no_route ? detail::printable(e.path, 256)
                                                            : std::string(detail::kRouteTable[match.index].path);
    }
    const double ms = std::chrono::duration<double, std::milli>(e.duration).count();
    const std::string method = detail::printable(e.method, 16);
    log.event(level, "request", (method.empty() ? std::string("-") : method) + " " + (route.empty() ? "-" : route) + " " +
                                    std::to_string(e.status),
              {{"request_id", e.request_id},
               {"method", method},
               {"route", route},
               {"tenant", e.context},
               {"status", e.status},
               {"bytes_in", e.bytes_in},
               {"bytes_out", e.bytes_out},
               {"duration_ms", std::round(ms * 1000) / 1000},
               {"client", e.client}});
  } catch (...) {
  }
}

Server::Server(ServiceConfig config, TokenStore tokens, GpuBackend& backend,
               std::shared_ptr<const topology::Topology> topology, Log log)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(tokens), backend, std::move(topology), std::move(log))) {}

Server::~Server() { stop(); }

void Server::start() {
  Impl& s = *impl_;
  std::lock_guard lock(s.stop_mutex);
  if (s.started) return;
  s.transport.listen();
  s.transport.start();
  s.started = true;
  s.log.info("listening", "serving HTTP on " + s.config.listen_address + ":" + std::to_string(s.transport.port()),
             {{"address", s.config.listen_address}, {"port", s.transport.port()}});
}

int Server::port() const noexcept { return impl_->transport.port(); }

void Server::stop() noexcept {
  Impl& s = *impl_;
  std::lock_guard lock(s.stop_mutex);
  if (s.stopped) return;
  s.stopped = true;
  auto phase = [&s](std::string_view name, std::string_view message) {
    s.log.info("shutdown", message, {{"phase", name}});
  };
  phase("drain", "draining: new work is refused, queued and running launches get drain_timeout_ms (" +
                     std::to_string(s.config.drain_timeout.count()) + " ms)");
  s.core.begin_drain();
  s.core.drain_jobs();
  // Requests still in a handler (a long poll, a launch the drain let finish) write their answers.
  phase("transport", "closing connections; requests in progress write their answers");
  s.transport.stop(std::chrono::seconds(5));
  phase("release", "freeing every buffer");
  s.core.shutdown();  // frees the buffers once no handler can add one
  phase("stopped", "stopped");
  s.log.flush();
}

void Server::worker_event(const WorkerEvent& event) noexcept { impl_->core.worker_event(event); }

std::span<const Route> Server::routes() noexcept { return kRoutes; }

void Server::begin_drain() noexcept { impl_->core.begin_drain(); }

core::ServiceCore& Server::core() noexcept { return impl_->core; }
const TokenStore& Server::tokens() const noexcept { return impl_->tokens; }

}  // namespace kiln::service
