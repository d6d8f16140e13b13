// Server: kilnd's HTTP front end. HTTP/JSON on an event-driven transport (Boost.Beast on Asio,
// src/service/http): bearer-token auth per tenant, request limits and parsing; everything past that (kernel registration through the JIT cache under the
// source policy, buffers and launches through a GpuBackend, the scheduler, health, readiness and
// Prometheus metrics) is the service core's (src/service/core), whose typed errors it maps to
// statuses. docs/SERVICE.md describes the API; docs/openapi.json is its contract (a test
// checks that the two list the same routes).
//
// Thread safety: start() and stop() from one controlling thread; requests are served on the
// transport's I/O threads and handler pool, and every other member may be called from any thread.
#pragma once

#include <memory>
#include <span>
#include <string_view>

#include "kiln/service/config.hpp"
#include "kiln/service/gpu_backend.hpp"
#include "kiln/service/log.hpp"
#include "kiln/service/token_store.hpp"
#include "kiln/service/worker_pool.hpp"

namespace kiln::topology {
class Topology;
}

namespace kiln::service {

namespace core {
class ServiceCore;
}

// One route the server registers, spelled as the OpenAPI document spells it.
struct Route {
  std::string_view method;  // "GET", "POST", "PUT", "DELETE"
  std::string_view path;    // "/v1/kernels/{id}"
};

class Server {
 public:
  // The backend must outlive the server. `topology` (optional) guides placement on several GPUs.
  // `log` receives every request and event (log.hpp); the default discards them. Throws
  // kiln::Error for an invalid configuration.
  Server(ServiceConfig config, TokenStore tokens, GpuBackend& backend,
         std::shared_ptr<const topology::Topology> topology = {}, Log log = {});
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the configured address and port and serves on background threads. Throws kiln::Error
  // naming the address and port when they cannot be bound. Idempotent.
  void start();
  // The bound port (the chosen one when the configuration says 0); 0 before start().
  int port() const noexcept;
  // Graceful: new requests get 503, queued and running launches get the configured drain time,
  // what is still queued is cancelled, the listener stops, every buffer is freed. Idempotent.
  void stop() noexcept;
  // stop()'s first step alone: from now on every front end over this core refuses new work (503,
  // UNAVAILABLE), so a second front end can be stopped before this one. Idempotent.
  void begin_drain() noexcept;

  // A GPU worker's event (install it beside the log in WorkerPoolOptions::on_event): failures are
  // listed on the status page (GET /v1/status). Quick and non-throwing, as on_event requires.
  void worker_event(const WorkerEvent& event) noexcept;

  static std::span<const Route> routes() noexcept;

  // The service core and the tokens this server answers with, for a second front end over the same
  // core (kilnd's gRPC server): it must stop before this server does (stop() frees every buffer).
  core::ServiceCore& core() noexcept;
  const TokenStore& tokens() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::service
