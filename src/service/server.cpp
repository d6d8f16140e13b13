#include "kiln/service/server.hpp"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/service_core.hpp"
#include "detail/error_body.hpp"
#include "detail/routes.hpp"
#include "kiln/driver/error.hpp"
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

// A core error as an HTTP answer: the status and code the API documents for its kind, the error
// body of src/service/detail/error_body.*, and the kind's members (a rule, a field, details).
void send_service_error(Response& res, const core::ServiceError& e) {
  using core::ErrorKind;
  json extra = e.details.is_object() ? e.details : json::object();
  int status = 500;
  std::string_view code = "internal";
  switch (e.kind) {
    case ErrorKind::not_found: status = 404, code = "not_found"; break;
    case ErrorKind::invalid_argument: status = 400, code = "bad_request"; break;
    case ErrorKind::too_large: status = 413, code = "payload_too_large"; break;
    case ErrorKind::policy: status = 422, code = "source_policy"; break;
    case ErrorKind::compile_failed: status = 422, code = "compile_failed"; break;
    case ErrorKind::too_many_kernels: status = 429, code = "too_many_kernels"; break;
    case ErrorKind::too_many_compiles: status = 429, code = "too_many_compiles"; break;
    case ErrorKind::compile_busy:
      status = 503, code = "compile_busy";
      res.set_header("Retry-After", "1");
      break;
    case ErrorKind::compile_pending: status = 504, code = "compile_pending"; break;
    case ErrorKind::queue_full: status = 429, code = "queue_full"; break;
    case ErrorKind::shutting_down: status = 503, code = "shutting_down"; break;
    case ErrorKind::out_of_memory: status = 507, code = "out_of_memory"; break;
    case ErrorKind::out_of_host_memory: status = 503, code = "out_of_host_memory"; break;
    case ErrorKind::unavailable: status = 503, code = "no_gpu"; break;
    case ErrorKind::internal: status = 500, code = "internal"; break;
  }
  if (!e.rule.empty()) extra["rule"] = e.rule;
  if (!e.field.empty()) extra["field"] = e.field;
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
  return {{"id", k.id}, {"name", k.name}, {"lowered_names", k.lowered_names}, {"targets", targets}};
}

json buffer_json(const core::BufferInfo& b) {
  return {{"id", b.id}, {"device", b.device}, {"bytes", b.bytes}, {"tag", b.tag}};
}

}  // namespace

struct Server::Impl {
  using Handler = void (Impl::*)(const Request&, Response&, const std::string& tenant);

  Impl(ServiceConfig c, TokenStore t, GpuBackend& b, std::shared_ptr<const topology::Topology> topo)
      : tokens(std::move(t)), core(std::move(c), b, std::move(topo)) {
    configure();
  }

  TokenStore tokens;
  core::ServiceCore core;
  const ServiceConfig& config = core.config();
  httplib::Server http;
  std::thread listener;
  std::atomic<int> bound_port{0};
  std::atomic<int> listen_socket{-1};
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
  void launch(const Request&, Response&, const std::string&);
  void list_jobs(const Request&, Response&, const std::string&);
  void get_job(const Request&, Response&, const std::string&);

  // Each route's handler, in detail::kRouteTable's order, and whether it needs a tenant's token.
  static constexpr std::array<std::pair<Handler, bool>, detail::kRouteTable.size()> kHandlers = {{
      {&Impl::healthz, false},       {&Impl::readyz, false},        {&Impl::metrics_text, false},
      {&Impl::create_kernel, true},  {&Impl::list_kernels, true},   {&Impl::get_kernel, true},
      {&Impl::delete_kernel, true},  {&Impl::create_buffer, true},  {&Impl::list_buffers, true},
      {&Impl::get_buffer, true},     {&Impl::delete_buffer, true},  {&Impl::upload, true},
      {&Impl::download, true},       {&Impl::launch, true},         {&Impl::list_jobs, true},
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
      core.http_answered(res.status);
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
      if (core.draining()) {
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
  } catch (...) {
    // The core answers typed errors; what is thrown here is the front end's own (or a bug): the
    // answer says what was thrown and the server stays up.
    send_service_error(res, core::error_from_exception(std::current_exception()));
  }
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
  if (!k) return send_service_error(res, k.error());
  res.set_header("Location", "/v1/kernels/" + std::to_string(k->id));
  json answer = {{"id", k->id}, {"name", k->name}, {"lowered_names", k->lowered_names}, {"targets", k->targets},
                 {"warnings", k->warnings}};
  if (!k->compiled_by.empty()) answer["compiled_by"] = k->compiled_by;
  send_json(res, 201, answer);
}

void Server::Impl::list_kernels(const Request& req, Response& res, const std::string& tenant) {
  auto page = page_request(req, res);
  if (!page) return;
  send_json(res, 200, page_json("kernels", core.list_kernels(tenant, *page), kernel_json));
}

void Server::Impl::get_kernel(const Request& req, Response& res, const std::string& tenant) {
  auto k = core.kernel(tenant, path_id(req));
  if (!k) return send_service_error(res, k.error());
  send_json(res, 200, kernel_json(k.value()));
}

void Server::Impl::delete_kernel(const Request& req, Response& res, const std::string& tenant) {
  auto done = core.delete_kernel(tenant, path_id(req));
  if (!done) return send_service_error(res, done.error());
  res.status = 204;
}

void Server::Impl::create_buffer(const Request& req, Response& res, const std::string& tenant) {
  if (!json_size_ok(req, res)) return;
  Parsed<BufferRequest> parsed = parse_buffer_request(req.body, core.request_limits());
  if (!parsed.ok()) return send_error(res, 400, "bad_request", parsed.error().text(), {{"field", parsed.error().field}});
  auto b = core.create_buffer(tenant, parsed.value());
  if (!b) return send_service_error(res, b.error());
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
  if (!b) return send_service_error(res, b.error());
  send_json(res, 200, buffer_json(b.value()));
}

void Server::Impl::delete_buffer(const Request& req, Response& res, const std::string& tenant) {
  auto done = core.delete_buffer(tenant, path_id(req));
  if (!done) return send_service_error(res, done.error());
  res.status = 204;
}

void Server::Impl::upload(const Request& req, Response& res, const std::string& tenant) {
  // A missing buffer is answered before a malformed offset, as before the core existed.
  if (auto b = core.buffer(tenant, path_id(req)); !b) return send_service_error(res, b.error());
  auto offset = query_number(req, res, "offset", 0);
  if (!offset) return;
  auto done = core.write_buffer(tenant, path_id(req), *offset, std::as_bytes(std::span(req.body.data(), req.body.size())));
  if (!done) return send_service_error(res, done.error());
  send_json(res, 200, {{"written", req.body.size()}, {"offset", *offset}});
}

void Server::Impl::download(const Request& req, Response& res, const std::string& tenant) {
  if (auto b = core.buffer(tenant, path_id(req)); !b) return send_service_error(res, b.error());
  auto offset = query_number(req, res, "offset", 0);
  if (!offset) return;
  std::optional<std::uint64_t> bytes;
  if (req.has_param("bytes")) {
    bytes = query_number(req, res, "bytes", 0);
    if (!bytes) return;
  }
  auto data = core.read_buffer(tenant, path_id(req), *offset, bytes);
  if (!data) return send_service_error(res, data.error());
  res.status = 200;
  res.set_content(std::string(reinterpret_cast<const char*>(data->data()), data->size()), "application/octet-stream");
}

void Server::Impl::launch(const Request& req, Response& res, const std::string& tenant) {
  const Clock::time_point entered = Clock::now();
  if (!json_size_ok(req, res)) return;
  Parsed<LaunchRequest> parsed = parse_launch_request(req.body, core.request_limits());
  if (!parsed.ok()) return send_error(res, 400, "bad_request", parsed.error().text(), {{"field", parsed.error().field}});
  auto launched = core.launch(tenant, std::move(parsed.value()));
  if (!launched) return send_service_error(res, launched.error());
  const core::LaunchOutcome& out = launched.value();
  res.set_header("Location", "/v1/jobs/" + std::to_string(out.job.id));
  // Where the request's time went, for clients and benchmarks (W3C Server-Timing, milliseconds):
  // checking it (parse, lookups, placement), and from submission to the answer (queue and launch).
  const Clock::time_point answered = Clock::now();
  auto ms = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  char timing[128];
  std::snprintf(timing, sizeof timing, "check;dur=%.3f, run;dur=%.3f, total;dur=%.3f", ms(entered, out.checked),
                ms(out.checked, answered), ms(entered, answered));
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
  if (!job) return send_service_error(res, job.error());
  send_json(res, 200, job_json(job.value()));
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
  s.core.begin_drain();
  s.core.drain_jobs();
  s.http.stop();
  if (s.listener.joinable()) s.listener.join();
  s.core.shutdown();  // frees the buffers once no handler can add one
}

std::span<const Route> Server::routes() noexcept { return kRoutes; }

}  // namespace kiln::service
