#include "kiln/service/server.hpp"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "detail/buffer_registry.hpp"
#include "detail/compile_gate.hpp"
#include "detail/kernel_build.hpp"
#include "detail/cluster_compiles.hpp"
#include "detail/error_body.hpp"
#include "detail/kernel_registry.hpp"
#include "detail/routes.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/jit/kernel_cache.hpp"
#include "kiln/memory/out_of_memory.hpp"
#include "kiln/service/in_process_queue.hpp"
#include "kiln/service/metrics.hpp"
#include "kiln/service/requests.hpp"
#include "kiln/service/scheduler.hpp"

namespace kiln::service {

namespace {

using nlohmann::json;
using httplib::Request;
using httplib::Response;

// The routes as the OpenAPI document spells them (Server::routes()), from the table the router uses.
constexpr auto kRoutes = [] {
  std::array<Route, detail::kRouteTable.size()> out{};
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = {detail::kRouteTable[i].method, detail::kRouteTable[i].path};
  return out;
}();

// cpp-httplib hands its callbacks a const view of the Request that Server::process_request owns as
// a non-const local, so changing it through this reference is defined behaviour. kilnd changes two
// things: the body, which it reads itself under its own limits (cpp-httplib 0.11 bounds neither a
// chunked nor a compressed body), and the ranges, which it does not serve (a Range header is
// ignored, as RFC 9110 allows: cpp-httplib would cut any answer, errors included, to the ranges).
Request& owned(const Request& req) { return const_cast<Request&>(req); }

void send_json(Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(detail::json_text(body), "application/json");
}

void send_error(Response& res, int status, std::string_view code, std::string_view message, const json& extra = nullptr) {
  res.status = status;
  res.set_content(detail::error_body(code, message, extra), "application/json");
}

// An error answer after which the connection closes: the request's body was not read (or not all
// of it), so what follows on the connection cannot be told from the next request. cpp-httplib
// closes a connection whose answer fails to write, so the answer goes out through a content
// provider that writes all of it and then reports failure.
void send_error_and_close(Response& res, int status, std::string_view code, std::string_view message,
                          const json& extra = nullptr) {
  auto body = std::make_shared<const std::string>(detail::error_body(code, message, extra));
  res.status = status;
  res.body.clear();
  res.set_header("Connection", "close");
  res.set_content_provider(body->size(), "application/json",
                           [body](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
                             sink.write(body->data() + offset, std::min(length, body->size() - offset));
                             return false;  // ends the connection once the answer is out
                           });
}

// A query parameter as an unsigned number, or nullopt (and a 400 sent) when malformed.
std::optional<std::uint64_t> query_number(const Request& req, Response& res, const char* name, std::uint64_t fallback) {
  if (!req.has_param(name)) return fallback;
  const std::string text = req.get_param_value(name);
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

std::optional<detail::FramingError> check_framing(const Request& req, detail::Framing& framing) {
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  headers.reserve(req.headers.size());
  for (const auto& [name, value] : req.headers) headers.emplace_back(name, value);
  return detail::check_framing(req.method, headers, framing);
}

detail::Framing framing_of(const Request& req) {
  detail::Framing framing;
  (void)check_framing(req, framing);
  return framing;
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

// The route's {id}; the router answered 404 already when it does not fit in 64 bits.
std::uint64_t path_id(const Request& req) { return detail::match_route(req.method, req.path).id.value_or(0); }

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
            {"state", to_string(s.state)},
            {"device", s.device},
            {"priority", std::string(to_string(s.priority))},
            {"queued_ms", s.queued_ms},
            {"total_ms", s.total_ms}};
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

jit::KernelCacheOptions cache_options(const ServiceConfig& config) {
  jit::KernelCacheOptions o;
  o.memory_bytes = config.cache_memory_bytes;
  o.disk.directory = config.cache_dir;
  o.policy = config.source_policy;
  if (config.compile_workers > 0) {
    o.compile_worker = jit::CompileWorkerOptions{};
    try {
      o.compile_worker->executable = jit::CompileWorker::default_executable();
    } catch (const Error& e) {
      throw Error(Errc::invalid_argument, e.detail() + "; kilnd compiles in compile worker processes by default "
                                                       "(compile_workers), or set compile_workers, "
                                                       "source_policy.max_compile_time_ms and max_compile_memory_bytes "
                                                       "to 0 to compile in its own process");
    }
    o.compile_worker_processes = config.compile_workers;
  }
  return o;
}

detail::CompileGateLimits gate_limits(const ServiceConfig& config) {
  const unsigned slots = config.compile_workers > 0 ? config.compile_workers : std::max(1u, std::thread::hardware_concurrency());
  return {slots, compiles_per_tenant(config), config.max_queued_compiles_per_tenant};
}

InProcessQueueOptions queue_options(const ServiceConfig& config) {
  return {config.max_queued_jobs, config.max_queued_jobs_per_tenant, config.aging_step};
}

}  // namespace

using detail::CompiledImage;
using detail::diagnostic_json;

namespace {

bool uses_shared_queue(const ServiceConfig& config) { return !config.queue_url.empty() && config.queue_url != "memory"; }

std::unique_ptr<RedisStreamQueue> shared_queue_for(const ServiceConfig& config) {
  if (!uses_shared_queue(config)) return nullptr;
  // Without hiredis the queue's RedisClient refuses to connect, naming the address and the reason.
  StreamQueueOptions o;
  o.prefix = config.queue_prefix;
  o.lease = config.cluster_lease;
  o.retention = config.job_retention;
  return std::make_unique<RedisStreamQueue>(parse_redis_url(config.queue_url), o);
}

}  // namespace

struct Server::Impl {
  using Handler = void (Impl::*)(const Request&, Response&, const std::string& tenant);

  Impl(ServiceConfig c, TokenStore t, GpuBackend& b, std::shared_ptr<const topology::Topology> topo)
      : config((validate(c), std::move(c))),
        tokens(std::move(t)),
        backend(b),
        cache(cache_options(config)),
        compile_gate(gate_limits(config)),
        queue(queue_options(config)),
        scheduler(backend, queue, metrics,
                  SchedulerOptions{config.dispatchers_per_device, std::chrono::milliseconds(5000), config.job_retention},
                  std::move(topo)) {
    if (shared_queue)
      cluster = std::make_unique<detail::ClusterCompiles>(
          *shared_queue, config.node_name.empty() ? detail::default_node_name() : config.node_name,
          config.cluster_compile_threads, config.cluster_max_deliveries, cache);
    configure();
  }

  ServiceConfig config;
  TokenStore tokens;
  GpuBackend& backend;
  Metrics metrics;
  jit::KernelCache cache;
  detail::CompileGate compile_gate;
  InProcessQueue queue;
  Scheduler scheduler;
  detail::KernelRegistry kernels;
  detail::BufferRegistry buffers;
  std::unique_ptr<RedisStreamQueue> shared_queue = shared_queue_for(config);  // scale-out only
  std::unique_ptr<detail::ClusterCompiles> cluster;
  httplib::Server http;
  std::thread listener;
  std::atomic<int> bound_port{0};
  std::atomic<int> listen_socket{-1};
  std::atomic<bool> draining{false};
  std::atomic<bool> listener_done{false};
  std::mutex stop_mutex;
  bool stopped = false;

  void configure();
  bool before_routing(const Request& req, Response& res);
  void answer(const Request& req, Response& res, const httplib::ContentReader* reader);
  bool read_body(const Request& req, Response& res, const httplib::ContentReader& reader, const detail::Framing& framing,
                 detail::BodyKind kind);
  void serve(const Request& req, Response& res, Handler handler, const std::string& tenant);
  // The tenant of the request's token, or nullopt with a 401 sent (closing the connection when the
  // request's body is left unread).
  std::optional<std::string> authenticate(const Request& req, Response& res, bool body_unread);
  bool json_size_ok(const Request& req, Response& res);
  RequestLimits request_limits() const { return {config.max_launch_arguments, config.max_json_depth, config.max_json_values}; }
  std::string why_not_ready(const std::vector<DeviceStatus>& devices);
  const CompiledImage* image_for(std::shared_ptr<const detail::RegisteredKernel>& kernel, int arch);

  void healthz(const Request&, Response&, const std::string&);
  void readyz(const Request&, Response&, const std::string&);
  void metrics_text(const Request&, Response&, const std::string&);
  void create_kernel(const Request&, Response&, const std::string&);
  void get_kernel(const Request&, Response&, const std::string&);
  void delete_kernel(const Request&, Response&, const std::string&);
  void create_buffer(const Request&, Response&, const std::string&);
  void get_buffer(const Request&, Response&, const std::string&);
  void delete_buffer(const Request&, Response&, const std::string&);
  void upload(const Request&, Response&, const std::string&);
  void download(const Request&, Response&, const std::string&);
  void launch(const Request&, Response&, const std::string&);
  void get_job(const Request&, Response&, const std::string&);

  // Each route's handler, in detail::kRouteTable's order, and whether it needs a tenant's token.
  static constexpr std::array<std::pair<Handler, bool>, detail::kRouteTable.size()> kHandlers = {{
      {&Impl::healthz, false},       {&Impl::readyz, false},        {&Impl::metrics_text, false},
      {&Impl::create_kernel, true},  {&Impl::get_kernel, true},     {&Impl::delete_kernel, true},
      {&Impl::create_buffer, true},  {&Impl::get_buffer, true},     {&Impl::delete_buffer, true},
      {&Impl::upload, true},         {&Impl::download, true},       {&Impl::launch, true},
      {&Impl::get_job, true},
  }};
};

void Server::Impl::configure() {
  http.new_task_queue = [n = config.http_threads] { return new httplib::ThreadPool(static_cast<std::size_t>(n)); };
  http.set_payload_max_length(config.max_body_bytes);
  http.set_keep_alive_timeout(2);
  // cpp-httplib closes a kept-alive connection after 5 requests by default: a busy client would pay
  // a new connection (and sometimes a failed read) every fifth request. The idle timeout above is
  // what frees threads from quiet clients.
  http.set_keep_alive_max_count(1000);
  // Remember the listening socket: start() widens its backlog (below).
  http.set_socket_options([this](socket_t sock) {
    httplib::default_socket_options(sock);
    listen_socket.store(sock, std::memory_order_relaxed);
  });
  // A response goes out in several writes (headers, body): with Nagle's algorithm on, the client's
  // delayed ACK holds the second one back ~40 ms on every request of a keep-alive connection.
  http.set_tcp_nodelay(true);
  http.set_read_timeout(std::chrono::seconds(30));
  // Every callback below runs on cpp-httplib's threads, some outside any try (the error handler,
  // the logger, the exception handler itself): an exception escaping one ends the process. Each
  // catches everything.
  http.set_logger([this](const Request&, const Response& res) {
    try {
      metrics.http_answered(res.status);
    } catch (...) {
    }
  });
  http.set_pre_routing_handler([this](const Request& req, Response& res) {
    try {
      return before_routing(req, res) ? httplib::Server::HandlerResponse::Handled
                                      : httplib::Server::HandlerResponse::Unhandled;
    } catch (...) {
      send_error_and_close(res, 500, "internal", "internal error while checking the request");
      return httplib::Server::HandlerResponse::Handled;
    }
  });
  // Answers cpp-httplib produced itself (a malformed request line or header, a URI over 8 KiB, an
  // unparsable Range) get the JSON error shape; answers kilnd wrote are left alone.
  http.set_error_handler(httplib::Server::HandlerWithResponse([](const Request& req, Response& res) {
    try {
      if (!res.body.empty() || res.content_provider_) return httplib::Server::HandlerResponse::Unhandled;
      owned(req).ranges.clear();
      std::string message;
      if (res.status == 400) message = "malformed HTTP request (request line or headers)";
      else if (res.status == 413) message = "the request body exceeds the service's limit (max_body_bytes)";
      else if (res.status == 414) message = "the request line exceeds 8 KiB";
      else if (res.status == 416) message = "the Range header cannot be parsed";
      else message = "the request could not be served";
      send_error(res, res.status, detail::status_code_name(res.status), message);
    } catch (...) {
      res.body = "{}";
    }
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([](const Request&, Response& res, std::exception_ptr ep) {
    try {
      send_error(res, 500, "internal", "internal error: " + what_of(ep));
    } catch (...) {
      res.status = 500;
    }
  });
  // before_routing() matched every request that gets this far to one of kilnd's routes (the
  // others are answered there), so one handler per method serves them all. Methods that may carry
  // a body take it through a ContentReader: kilnd reads it (read_body) only once the route and the
  // token are known.
  auto plain = [this](const Request& req, Response& res) { answer(req, res, nullptr); };
  auto reading = [this](const Request& req, Response& res, const httplib::ContentReader& reader) {
    answer(req, res, &reader);
  };
  http.Get(".*", plain);
  http.Post(".*", reading);
  http.Put(".*", reading);
  http.Delete(".*", reading);
}

bool Server::Impl::before_routing(const Request& req, Response& res) {
  owned(req).ranges.clear();
  detail::Framing framing;
  if (auto refused = check_framing(req, framing)) {
    send_error_and_close(res, refused->status, detail::status_code_name(refused->status), refused->message);
    return true;
  }
  // Answered here, before any body is read: a body left unread ends the connection.
  auto refuse = [&](int status, std::string_view code, const std::string& message) {
    if (framing.has_body()) send_error_and_close(res, status, code, message);
    else send_error(res, status, code, message);
    return true;
  };
  const detail::RouteMatch match = detail::match_route(req.method, req.path);
  if (match.result == detail::RouteResult::no_route)
    return refuse(404, "not_found", "no route for " + detail::printable(req.method, 16) + " " + detail::printable(req.path, 256));
  if (match.result == detail::RouteResult::wrong_method) {
    res.set_header("Allow", match.allowed);
    return refuse(405, "method_not_allowed",
                  detail::printable(req.path, 256) + " answers " + match.allowed + ", not " + detail::printable(req.method, 16));
  }
  if (match.has_id && !match.id) {
    // More digits than any id has: no such thing exists, for any tenant.
    if (kHandlers[match.index].second && !authenticate(req, res, framing.has_body())) return true;
    const detail::RouteSpec& route = detail::kRouteTable[match.index];
    return refuse(404, "not_found", std::string(detail::id_noun(route)) + " " + detail::printable(match.id_text, 40) + " not found");
  }
  return false;
}

void Server::Impl::answer(const Request& req, Response& res, const httplib::ContentReader* reader) {
  try {
    const detail::RouteMatch match = detail::match_route(req.method, req.path);
    if (match.result != detail::RouteResult::found) {  // before_routing() answered these already
      send_error_and_close(res, 404, "not_found", "no route for " + detail::printable(req.path, 256));
      return;
    }
    const auto [handler, needs_tenant] = kHandlers[match.index];
    const detail::Framing framing = framing_of(req);  // before_routing() refused what is ambiguous
    const bool has_body = framing.has_body();
    std::string tenant;
    if (needs_tenant) {
      auto who = authenticate(req, res, has_body);  // nothing of an unauthenticated body is read
      if (!who) return;
      tenant = std::move(*who);
      if (draining.load(std::memory_order_acquire)) {
        if (has_body) send_error_and_close(res, 503, "shutting_down", "the service is shutting down");
        else send_error(res, 503, "shutting_down", "the service is shutting down");
        return;
      }
    }
    if (reader && has_body && !read_body(req, res, *reader, framing, detail::kRouteTable[match.index].body)) return;
    serve(req, res, handler, tenant);
  } catch (...) {
    send_error(res, 500, "internal", "internal error: " + what_of(std::current_exception()));
  }
}

bool Server::Impl::read_body(const Request& req, Response& res, const httplib::ContentReader& reader,
                             const detail::Framing& framing, detail::BodyKind kind) {
  // A JSON body (and the body of a DELETE, which kilnd ignores) is held up to max_json_bytes; an
  // upload up to max_body_bytes. Past its limit a body is read on and dropped up to max_body_bytes,
  // so the connection stays in step and the client reads its 413; past max_body_bytes reading stops.
  const std::size_t limit = kind == detail::BodyKind::bytes ? config.max_body_bytes : config.max_json_bytes;
  std::string body;
  if (framing.content_length) body.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(*framing.content_length, limit)));
  std::uint64_t received = 0;
  bool over_limit = false, over_max = false;
  const bool complete = reader([&](const char* data, std::size_t n) {
    received += n;
    if (received > config.max_body_bytes) {
      over_max = true;
      return false;
    }
    if (received > limit) {
      if (!over_limit) std::string().swap(body);
      over_limit = true;
      return true;
    }
    body.append(data, n);
    return true;
  });
  const std::string limit_name = kind == detail::BodyKind::bytes ? "max_body_bytes" : "max_json_bytes";
  if (over_max || (!complete && res.status == 413)) {
    const std::string message = "the request body exceeds the service's limit (max_body_bytes = " +
                                std::to_string(config.max_body_bytes) + ")";
    // cpp-httplib refuses a Content-Length over the limit and skips the body; a chunked or
    // compressed body kilnd stopped reading ends the connection.
    if (over_max) send_error_and_close(res, 413, "payload_too_large", message);
    else send_error(res, 413, "payload_too_large", message);
    return false;
  }
  if (!complete) {
    if (res.status == 415)
      send_error_and_close(res, 415, "unsupported_media_type", "the body's Content-Encoding is not supported");
    else
      send_error_and_close(res, 400, "bad_request",
                           "the request body could not be read (malformed chunked encoding or compressed data, "
                           "or the client stopped sending)");
    return false;
  }
  if (over_limit) {
    send_error(res, 413, "payload_too_large",
               "the " + std::string(kind == detail::BodyKind::bytes ? "" : "JSON ") + "body has " + std::to_string(received) +
                   " bytes; the limit (" + limit_name + ") is " + std::to_string(limit));
    return false;
  }
  owned(req).body = std::move(body);
  return true;
}

std::optional<std::string> Server::Impl::authenticate(const Request& req, Response& res, bool body_unread) {
  res.set_header("WWW-Authenticate", "Bearer realm=\"kilnd\"");
  const std::string header = req.get_header_value("Authorization");
  static constexpr std::string_view kScheme = "Bearer ";
  std::string_view refusal;
  std::optional<std::string> tenant;
  if (header.empty()) refusal = "missing 'Authorization: Bearer <token>' header";
  else if (header.size() <= kScheme.size() || header.compare(0, kScheme.size(), kScheme) != 0)
    refusal = "the Authorization header must use the Bearer scheme";
  else if (!(tenant = tokens.tenant_for(std::string_view(header).substr(kScheme.size()))))
    refusal = "unknown bearer token";
  if (!tenant) {
    if (body_unread) send_error_and_close(res, 401, "unauthorized", refusal);
    else send_error(res, 401, "unauthorized", refusal);
  }
  return tenant;
}

void Server::Impl::serve(const Request& req, Response& res, Handler handler, const std::string& tenant) {
  try {
    (this->*handler)(req, res, tenant);
  } catch (const memory::OutOfMemoryError& e) {
    const memory::MemoryPicture& p = e.picture();
    send_error(res, 507, "out_of_memory", e.detail(),
               {{"device", p.device}, {"requested", p.requested}, {"free", p.free}, {"total", p.total},
                {"in_use", p.in_use}, {"reserved", p.reserved}});
  } catch (const Error& e) {
    if (e.is(Errc::driver_not_found) || e.is(Errc::nvrtc_not_found))
      send_error(res, 503, "no_gpu", e.detail().empty() ? e.what() : e.detail());
    else if (e.is(Errc::invalid_argument))
      send_error(res, 400, "bad_request", e.detail());
    else
      send_error(res, 500, "internal", e.what(), {{"name", std::string(e.name())}});
  } catch (const std::bad_alloc&) {
    send_error(res, 503, "out_of_host_memory", "kilnd could not allocate host memory for this request; retry later");
  } catch (...) {
    // A bug, not the client's fault; the answer says what was thrown and the server stays up.
    send_error(res, 500, "internal", "internal error: " + what_of(std::current_exception()));
  }
}

bool Server::Impl::json_size_ok(const Request& req, Response& res) {
  if (req.body.size() <= config.max_json_bytes) return true;
  send_error(res, 413, "payload_too_large",
             "the JSON body has " + std::to_string(req.body.size()) + " bytes; the limit (max_json_bytes) is " +
                 std::to_string(config.max_json_bytes));
  return false;
}

std::string Server::Impl::why_not_ready(const std::vector<DeviceStatus>& devices) {
  if (devices.empty()) {
    const std::string reason = backend.unavailable_reason();
    return "no GPU on this machine: " + (reason.empty() ? "the GPU backend reports no devices" : reason);
  }
  std::string why;
  for (const DeviceStatus& d : devices) {
    if (d.worker_up && !d.circuit_open) return {};
    why += (why.empty() ? "" : "; ") + std::string("GPU ") + std::to_string(d.ordinal) + ": " +
           (!d.worker_up ? "no worker" : "circuit breaker open") + (d.last_failure.empty() ? "" : " (" + d.last_failure + ")");
  }
  return "no GPU can take work: " + why;
}

void Server::Impl::healthz(const Request&, Response& res, const std::string&) {
  send_json(res, 200, {{"status", draining ? "draining" : "ok"}});
}

void Server::Impl::readyz(const Request&, Response& res, const std::string&) {
  const std::vector<DeviceStatus> devices = backend.devices();
  std::string why = draining ? "the service is shutting down" : why_not_ready(devices);
  json body = {{"ready", why.empty()}, {"devices", json::array()}};
  for (const DeviceStatus& d : devices) body["devices"].push_back(device_json(d));
  if (!why.empty()) body["reason"] = why;
  send_json(res, why.empty() ? 200 : 503, body);
}

void Server::Impl::metrics_text(const Request&, Response& res, const std::string&) {
  MetricsInputs in;
  in.queue_depth = queue.depth();
  in.jobs_running = scheduler.running();
  in.devices = backend.devices();
  in.buffer_bytes_by_device = buffers.bytes_by_device();
  in.buffer_bytes_by_tenant = buffers.bytes_by_tenant();
  in.kernels = kernels.size();
  in.compiles_running = compile_gate.running();
  in.compiles_waiting = compile_gate.waiting();
  in.cache = cache.stats();
  in.ready = !draining && why_not_ready(in.devices).empty();
  if (cluster) in.cluster = cluster->counters();
  res.status = 200;
  res.set_content(metrics.render(in), "text/plain; version=0.0.4; charset=utf-8");
}

void Server::Impl::create_kernel(const Request& req, Response& res, const std::string& tenant) {
  if (!json_size_ok(req, res)) return;
  Parsed<KernelRequest> parsed = parse_kernel_request(req.body, request_limits());
  if (!parsed.ok()) return send_error(res, 400, "bad_request", parsed.error().text(), {{"field", parsed.error().field}});

  std::set<int> archs;
  for (const DeviceStatus& d : backend.devices()) archs.insert(d.arch);
  if (archs.empty()) archs.insert(config.fallback_arch);

  detail::KernelBuild build;
  std::string compiled_by;
  if (cluster) {
    // Any node may compile it; this one waits, holding the client's connection.
    detail::ClusterCompiles::Outcome outcome = cluster->compile(tenant, req.body, archs, config.max_wait);
    if (!outcome.build)
      return send_error(res, 504, "compile_pending",
                        "compile job " + std::to_string(outcome.job) + " did not finish within max_wait_ms (" +
                            std::to_string(config.max_wait.count()) + "); the shared queue still holds it",
                        {{"job", outcome.job}});
    build = std::move(*outcome.build);
    compiled_by = outcome.compiled_by;
  } else {
    // A kernel every architecture of which is in the memory tier needs no compile slot.
    bool cached = true;
    for (int arch : archs)
      cached = cached && cache.memory().find(cache.key_for(parsed.value().program, detail::target_for_arch(arch))).has_value();
    std::optional<detail::CompileGate::Admission> admission;
    if (!cached) {
      admission.emplace(compile_gate.enter(tenant, Clock::now() + config.max_wait));
      if (!admission->ticket) {
        const detail::CompileGateLimits& limits = compile_gate.limits();
        if (admission->refusal == detail::CompileGate::Refusal::tenant_queue_full)
          return send_error(res, 429, "too_many_compiles",
                            "tenant '" + tenant + "' has " + std::to_string(limits.per_tenant) + " compile(s) running and " +
                                std::to_string(limits.queued_per_tenant) +
                                " waiting (max_compiles_per_tenant, max_queued_compiles_per_tenant); retry when one ends");
        res.set_header("Retry-After", "1");
        return send_error(res, 503, "compile_busy",
                          "no compile slot came free within max_wait_ms (" + std::to_string(config.max_wait.count()) +
                              "); every compile worker is busy");
      }
    }  // the admission's ticket holds the slot until the build is done
    build = detail::build_kernel(cache, parsed.value().program, archs);
  }
  if (!build.ok()) {
    json extra = build.error;
    const std::string code = extra.value("code", "compile_failed"), message = extra.value("message", "");
    extra.erase("code");
    extra.erase("message");
    if (!compiled_by.empty()) extra["compiled_by"] = compiled_by;
    return send_error(res, build.status, code, message, extra);
  }
  detail::RegisteredKernel kernel;
  kernel.tenant = tenant;
  kernel.program = std::move(parsed.value().program);
  for (auto& [arch, artifact] : build.images) {
    std::string bytes(artifact.image());
    if (artifact.kind() == jit::ImageKind::ptx) bytes.push_back('\0');
    kernel.images[arch] = CompiledImage{artifact, std::make_shared<const std::string>(std::move(bytes))};
  }
  const json lowered = kernel.images.begin()->second.artifact.lowered_names();
  const std::string name = kernel.program.name;
  auto added = kernels.add(std::move(kernel), config.max_kernels_per_tenant);
  if (!added)
    return send_error(res, 429, "too_many_kernels",
                      "tenant '" + tenant + "' holds " + std::to_string(config.max_kernels_per_tenant) +
                          " kernels (max_kernels_per_tenant); delete some first");
  res.set_header("Location", "/v1/kernels/" + std::to_string(added->id));
  json answer = {{"id", added->id}, {"name", name}, {"lowered_names", lowered}, {"targets", build.targets},
                 {"warnings", build.warnings}};
  if (!compiled_by.empty()) answer["compiled_by"] = compiled_by;
  send_json(res, 201, answer);
}

void Server::Impl::get_kernel(const Request& req, Response& res, const std::string& tenant) {
  auto kernel = kernels.find(path_id(req), tenant);
  if (!kernel) return send_error(res, 404, "not_found", "kernel " + std::to_string(path_id(req)) + " not found");
  json targets = json::array();
  for (const auto& [arch, image] : kernel->images)
    targets.push_back({{"arch", image.artifact.target().arch_name()}, {"kind", std::string(jit::to_string(image.artifact.kind()))}});
  send_json(res, 200, {{"id", kernel->id}, {"name", kernel->program.name},
                       {"lowered_names", kernel->images.begin()->second.artifact.lowered_names()}, {"targets", targets}});
}

void Server::Impl::delete_kernel(const Request& req, Response& res, const std::string& tenant) {
  if (!kernels.remove(path_id(req), tenant))
    return send_error(res, 404, "not_found", "kernel " + std::to_string(path_id(req)) + " not found");
  res.status = 204;
}

void Server::Impl::create_buffer(const Request& req, Response& res, const std::string& tenant) {
  if (!json_size_ok(req, res)) return;
  Parsed<BufferRequest> parsed = parse_buffer_request(req.body, request_limits());
  if (!parsed.ok()) return send_error(res, 400, "bad_request", parsed.error().text(), {{"field", parsed.error().field}});
  const BufferRequest& r = parsed.value();
  if (r.bytes > config.max_buffer_bytes)
    return send_error(res, 413, "payload_too_large",
                      "bytes: " + std::to_string(r.bytes) + " exceeds the largest buffer allowed (max_buffer_bytes = " +
                          std::to_string(config.max_buffer_bytes) + ")");
  const std::vector<DeviceStatus> devices = backend.devices();
  if (devices.empty()) throw Error(Errc::driver_not_found, why_not_ready(devices) + "; buffers need a GPU");
  auto device = std::find_if(devices.begin(), devices.end(), [&](const DeviceStatus& d) { return d.ordinal == r.device; });
  if (device == devices.end())
    return send_error(res, 400, "bad_request",
                      "device: " + std::to_string(r.device) + " does not exist (this machine has " +
                          std::to_string(devices.size()) + " GPU(s))", {{"field", "device"}});
  admit_buffer(*device, r.bytes, buffers.bytes_on(r.device));
  const BufferId id = backend.create_buffer(r.device, r.bytes, tenant + (r.tag.empty() ? "" : ":" + r.tag));
  buffers.add({id, tenant, r.device, r.bytes, r.tag});
  res.set_header("Location", "/v1/buffers/" + std::to_string(id));
  send_json(res, 201, {{"id", id}, {"device", r.device}, {"bytes", r.bytes}, {"tag", r.tag}});
}

void Server::Impl::get_buffer(const Request& req, Response& res, const std::string& tenant) {
  auto b = buffers.find(path_id(req), tenant);
  if (!b) return send_error(res, 404, "not_found", "buffer " + std::to_string(path_id(req)) + " not found");
  send_json(res, 200, {{"id", b->id}, {"device", b->device}, {"bytes", b->bytes}, {"tag", b->tag}});
}

void Server::Impl::delete_buffer(const Request& req, Response& res, const std::string& tenant) {
  auto b = buffers.remove(path_id(req), tenant);
  if (!b) return send_error(res, 404, "not_found", "buffer " + std::to_string(path_id(req)) + " not found");
  backend.free_buffer(b->id);
  res.status = 204;
}

void Server::Impl::upload(const Request& req, Response& res, const std::string& tenant) {
  auto b = buffers.find(path_id(req), tenant);
  if (!b) return send_error(res, 404, "not_found", "buffer " + std::to_string(path_id(req)) + " not found");
  auto offset = query_number(req, res, "offset", 0);
  if (!offset) return;
  if (*offset > b->bytes || req.body.size() > b->bytes - *offset)
    return send_error(res, 400, "bad_request",
                      "writing " + std::to_string(req.body.size()) + " bytes at offset " + std::to_string(*offset) +
                          " overruns buffer " + std::to_string(b->id) + " of " + std::to_string(b->bytes) + " bytes");
  backend.write_buffer(b->id, *offset, std::as_bytes(std::span(req.body.data(), req.body.size())));
  send_json(res, 200, {{"written", req.body.size()}, {"offset", *offset}});
}

void Server::Impl::download(const Request& req, Response& res, const std::string& tenant) {
  auto b = buffers.find(path_id(req), tenant);
  if (!b) return send_error(res, 404, "not_found", "buffer " + std::to_string(path_id(req)) + " not found");
  auto offset = query_number(req, res, "offset", 0);
  if (!offset) return;
  if (*offset > b->bytes)
    return send_error(res, 400, "bad_request", "offset " + std::to_string(*offset) + " is past the end of buffer " +
                                                   std::to_string(b->id) + " (" + std::to_string(b->bytes) + " bytes)");
  auto bytes = query_number(req, res, "bytes", b->bytes - *offset);
  if (!bytes) return;
  if (*bytes > b->bytes - *offset)
    return send_error(res, 400, "bad_request", "reading " + std::to_string(*bytes) + " bytes at offset " +
                                                   std::to_string(*offset) + " overruns buffer " + std::to_string(b->id) +
                                                   " of " + std::to_string(b->bytes) + " bytes");
  if (*bytes > config.max_body_bytes)
    return send_error(res, 413, "payload_too_large", "reading " + std::to_string(*bytes) +
                                                         " bytes exceeds max_body_bytes (" + std::to_string(config.max_body_bytes) +
                                                         "); read in ranges with offset and bytes");
  const std::vector<std::byte> data = backend.read_buffer(b->id, *offset, *bytes);
  res.status = 200;
  res.set_content(std::string(reinterpret_cast<const char*>(data.data()), data.size()), "application/octet-stream");
}

const CompiledImage* Server::Impl::image_for(std::shared_ptr<const detail::RegisteredKernel>& kernel, int arch) {
  if (auto it = kernel->images.find(arch); it != kernel->images.end()) return &it->second;
  // A GPU of an architecture the kernel was not compiled for (one came up since): compile now.
  jit::Artifact artifact = cache.compile(kernel->program, detail::target_for_arch(arch));
  std::string bytes(artifact.image());
  if (artifact.kind() == jit::ImageKind::ptx) bytes.push_back('\0');
  auto updated = std::make_shared<detail::RegisteredKernel>(*kernel);
  updated->images[arch] = CompiledImage{artifact, std::make_shared<const std::string>(std::move(bytes))};
  kernels.update(updated);
  kernel = updated;
  return &kernel->images.at(arch);
}

void Server::Impl::launch(const Request& req, Response& res, const std::string& tenant) {
  const Clock::time_point entered = Clock::now();
  if (!json_size_ok(req, res)) return;
  Parsed<LaunchRequest> parsed = parse_launch_request(req.body, request_limits());
  if (!parsed.ok()) return send_error(res, 400, "bad_request", parsed.error().text(), {{"field", parsed.error().field}});
  LaunchRequest& r = parsed.value();
  auto kernel = kernels.find(r.kernel, tenant);
  if (!kernel) return send_error(res, 404, "not_found", "kernel " + std::to_string(r.kernel) + " not found");

  // A name expression maps to its lowered name; anything else must be a symbol of the image.
  const auto& lowered = kernel->images.begin()->second.artifact.lowered_names();
  std::string symbol = r.function;
  if (auto it = lowered.find(r.function); it != lowered.end()) symbol = it->second;
  if (!kernel->has_symbol(symbol)) {
    std::string known;
    for (const auto& [expr, name] : lowered) known += (known.empty() ? "" : ", ") + expr;
    return send_error(res, 400, "bad_request",
                      "function: kernel " + std::to_string(r.kernel) + " has no function '" + r.function + "'" +
                          (known.empty() ? "" : " (its name expressions: " + known + ")"), {{"field", "function"}});
  }

  // Buffers: the tenant's own, offsets inside them, all on one GPU, which is the launch's GPU.
  std::optional<int> device = r.device;
  for (std::size_t i = 0; i < r.arguments.size(); ++i) {
    const auto* arg = std::get_if<BufferArgument>(&r.arguments[i]);
    if (!arg) continue;
    const std::string field = "arguments[" + std::to_string(i) + "]";
    auto b = buffers.find(arg->buffer, tenant);
    if (!b) return send_error(res, 404, "not_found", field + ": buffer " + std::to_string(arg->buffer) + " not found");
    if (arg->offset >= b->bytes)
      return send_error(res, 400, "bad_request", field + ": offset " + std::to_string(arg->offset) + " is outside buffer " +
                                                     std::to_string(b->id) + " (" + std::to_string(b->bytes) + " bytes)");
    if (device && *device != b->device)
      return send_error(res, 400, "bad_request", field + ": buffer " + std::to_string(b->id) + " is on device " +
                                                     std::to_string(b->device) + ", the launch is on device " +
                                                     std::to_string(*device));
    device = b->device;
  }
  if (r.deadline && *r.deadline > config.max_deadline)
    return send_error(res, 400, "bad_request", "deadline_ms: " + std::to_string(r.deadline->count()) +
                                                   " exceeds the service's max_deadline_ms (" +
                                                   std::to_string(config.max_deadline.count()) + ")");

  LaunchSpec spec;
  const std::vector<DeviceStatus> devices = backend.devices();
  spec.device = scheduler.place(device, devices);
  int arch = config.fallback_arch;
  for (const DeviceStatus& d : devices)
    if (d.ordinal == spec.device) arch = d.arch;
  const CompiledImage* image = image_for(kernel, arch);
  spec.tenant = tenant;
  spec.image = image->bytes;
  spec.image_key = image->artifact.key().hex();
  spec.kernel = symbol;
  spec.grid = r.grid;
  spec.block = r.block;
  spec.shared_bytes = r.shared_bytes;
  spec.arguments = std::move(r.arguments);
  spec.deadline = Clock::now() + r.deadline.value_or(config.default_deadline);

  const Clock::time_point checked = Clock::now();
  const SubmitResult submitted = scheduler.submit(std::move(spec), r.priority, /*run_here=*/r.wait);
  switch (submitted.status) {
    case SubmitStatus::accepted: break;
    case SubmitStatus::queue_full:
    case SubmitStatus::tenant_full: return send_error(res, 429, "queue_full", submitted.message);
    case SubmitStatus::shutting_down: return send_error(res, 503, "shutting_down", submitted.message);
  }
  res.set_header("Location", "/v1/jobs/" + std::to_string(submitted.id));
  const auto snapshot = scheduler.wait(submitted.id, tenant, r.wait ? config.max_wait : std::chrono::milliseconds(0));
  // Where the request's time went, for clients and benchmarks (W3C Server-Timing, milliseconds):
  // checking it (parse, lookups, placement), and from submission to the answer (queue and launch).
  const Clock::time_point answered = Clock::now();
  auto ms = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  char timing[128];
  std::snprintf(timing, sizeof timing, "check;dur=%.3f, run;dur=%.3f, total;dur=%.3f", ms(entered, checked),
                ms(checked, answered), ms(entered, answered));
  res.set_header("Server-Timing", timing);
  send_json(res, r.wait ? status_of(*snapshot) : 202, job_json(*snapshot));
}

void Server::Impl::get_job(const Request& req, Response& res, const std::string& tenant) {
  auto wait_ms = query_number(req, res, "wait_ms", 0);
  if (!wait_ms) return;
  const auto wait = std::min<std::chrono::milliseconds>(std::chrono::milliseconds(std::min<std::uint64_t>(*wait_ms, 1u << 30)),
                                                        config.max_wait);
  auto snapshot = scheduler.wait(path_id(req), tenant, wait);
  if (!snapshot) return send_error(res, 404, "not_found", "job " + std::to_string(path_id(req)) + " not found");
  send_json(res, 200, job_json(*snapshot));
}

Server::Server(ServiceConfig config, TokenStore tokens, GpuBackend& backend,
               std::shared_ptr<const topology::Topology> topology)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(tokens), backend, std::move(topology))) {}

Server::~Server() { stop(); }

void Server::start() {
  Impl& s = *impl_;
  int port = s.config.port;
  const bool bound = port == 0 ? (port = s.http.bind_to_any_port(s.config.listen_address)) > 0
                               : s.http.bind_to_port(s.config.listen_address, port);
  if (!bound)
    throw Error(Errc::invalid_argument, "cannot listen on " + s.config.listen_address + ":" + std::to_string(s.config.port) +
                                            " (address in use, or not an address of this machine)");
  s.bound_port = port;
  // cpp-httplib listens with a backlog of 5 (a compile-time setting of the library): 64 clients
  // connecting at once overflowed it and some first requests failed with a reset. Listening again
  // on the bound socket raises the backlog (Linux).
  if (const int fd = s.listen_socket.load(std::memory_order_relaxed); fd >= 0) ::listen(fd, SOMAXCONN);
  s.listener = std::thread([&s] {
    s.http.listen_after_bind();
    s.listener_done.store(true, std::memory_order_release);
  });
  // httplib's stop() does nothing until the listener runs: return only once it does, so a stop()
  // right after start() cannot be lost.
  while (!s.http.is_running() && !s.listener_done.load(std::memory_order_acquire))
    std::this_thread::sleep_for(std::chrono::microseconds(100));
}

int Server::port() const noexcept { return impl_->bound_port.load(); }

void Server::stop() noexcept {
  Impl& s = *impl_;
  std::lock_guard lock(s.stop_mutex);
  if (s.stopped) return;
  s.stopped = true;
  s.draining.store(true, std::memory_order_release);
  s.scheduler.shutdown(s.config.drain_timeout);
  s.http.stop();
  if (s.listener.joinable()) s.listener.join();
  for (const detail::BufferRecord& b : s.buffers.take_all()) {
    try {
      s.backend.free_buffer(b.id);
    } catch (const std::exception&) {
      // The backend is going away too (its worker died); nothing more can be freed from here.
    }
  }
}

std::span<const Route> Server::routes() noexcept { return kRoutes; }

}  // namespace kiln::service
