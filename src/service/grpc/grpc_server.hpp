// GrpcServer: kilnd's gRPC front end (proto/kiln/v1/kilnd.proto), beside the HTTP one over the same
// service core. Each method authenticates from the `authorization: Bearer <token>` metadata with the
// same TokenStore, turns its message into the core's request (through the HTTP API's parser, see
// grpc_messages.hpp), calls the core and maps the typed answer to a reply, or its ServiceError to a
// status (grpc_status.hpp). Nothing here decides what a request may do: the core does.
//
// gRPC's synchronous server: its thread pool serves each call on a thread that may block in the
// core (a compile, a launch with wait, a long poll), as HTTP's handler pool does; the core's calls
// block anyway, so the callback or completion-queue API would only move the blocking onto threads of
// our own. The pool is bounded (threads), as are the message size and the streams per connection.
//
// Not public API: kilnd (tools/kilnd) and the tests are its users.
// Thread safety: start() and stop() from one controlling thread; calls are served on gRPC's threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "kiln/service/config.hpp"
#include "kiln/service/log.hpp"
#include "kiln/service/token_store.hpp"

namespace kiln::service {

namespace core {
class ServiceCore;
}

struct GrpcOptions {
  std::string address = "127.0.0.1";
  int port = 0;                              // 0: an ephemeral port (GrpcServer::port() says which)
  std::size_t max_message_bytes = 4u << 20;  // either way (RESOURCE_EXHAUSTED above)
  int max_concurrent_streams = 100;          // calls at once on one connection
  int threads = 128;                         // calls served at once (the sync server's pool)
};

// kilnd's settings: listen_address and grpc_port, max_json_bytes for messages, grpc_threads threads.
GrpcOptions grpc_options(const ServiceConfig& config);

class GrpcServer {
 public:
  // `core` and `tokens` must outlive the server.
  GrpcServer(core::ServiceCore& core, const TokenStore& tokens, GrpcOptions options, Log log = {});
  ~GrpcServer();  // stop()
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  // Binds and serves on gRPC's threads. Throws kiln::Error naming the address when it cannot bind.
  void start();
  int port() const noexcept;  // the bound port; 0 before start()
  // Refuses new calls and waits up to `grace` for the ones in progress, then cancels them.
  // Idempotent; never throws.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(5)) noexcept;

  // The service's methods each answer; every one of kilnd.proto's is (a test checks it).
  // Methods deliberately left UNIMPLEMENTED (none today) are listed by unimplemented_methods().
  static std::span<const std::string_view> unimplemented_methods() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::service
