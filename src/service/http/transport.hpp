// kilnd's HTTP/1.1 transport: an event-driven server on Boost.Beast and Asio (docs/ARCHITECTURE.md
// says why). It accepts, reads and writes for every connection on a few I/O threads, so an idle or
// slow connection costs a socket and a few KiB, never a thread. It owns what HTTP asks of a server
// that faces the open network:
//   - limits on connections in total and per client address (a refused one is answered 503 and
//     closed);
//   - deadlines that no trickle of bytes restarts: from a request's first byte to the end of its
//     headers (header_timeout), for its body (body_timeout plus what min_body_rate allows for its
//     size), between kept-alive requests (idle_timeout), and for writing an answer (write_timeout);
//   - framing: one request at a time per connection (pipelined requests wait their turn),
//     chunked bodies, gzip and deflate bodies (limits hold on what they inflate to), Expect:
//     100-continue, and a 400 that closes the connection for what cannot be framed.
// Which route a request is, who sent it, and what it answers is the Handler's (server.cpp).
//
// Handlers run on the I/O threads when the Handler says a request cannot block (health, metrics,
// lookups), or else on a thread of a pool of `handler_threads` (compiles, launches, long polls,
// copies): blocked handlers never hold the threads that read and write.
//
// Thread safety: listen(), start() and stop() from one controlling thread. Handler callbacks run
// on the transport's threads, several at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "detail/routes.hpp"
#include "http/message.hpp"

namespace kiln::service::http {

struct TransportOptions {
  std::string address = "127.0.0.1";
  int port = 0;  // 0: an ephemeral one
  int io_threads = 2;
  int handler_threads = 16;
  std::chrono::microseconds handler_spin{0};  // an idle handler thread polls this long before sleeping
  std::size_t max_connections = 16384;
  std::size_t max_connections_per_client = 4096;
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds idle_timeout{60000};
  std::chrono::milliseconds body_timeout{10000};
  std::size_t min_body_rate = 64 * 1024;  // bytes per second, after body_timeout
  std::chrono::milliseconds write_timeout{30000};
  std::size_t max_header_bytes = 16 * 1024;  // request line and headers (431 above)
  std::size_t max_target_bytes = 8 * 1024;   // the request target (414 above)
  std::size_t max_body_bytes = 64u << 20;    // any body, decoded (413 above; the connection closes)
};

// What the Handler makes of a request before any of its body is read.
struct HeadVerdict {
  // Set: the answer, from the head alone. A body the request has is not read, so the connection
  // closes after it.
  std::optional<Response> answer;
  // The body is kept up to this many bytes; past it, it is read on and dropped up to
  // max_body_bytes and the request answered 413 naming `limit_name`.
  std::size_t body_limit = 0;
  std::string_view limit_name;
  bool may_block = false;  // served on the handler pool
  std::string context;     // for serve(): the tenant, say
};

// One final answer as the transport wrote it, for the request log and metrics. The views live
// only during the call.
struct Exchange {
  std::string_view request_id;   // also sent back as X-Request-Id
  std::string_view method;       // "" when no request line was read (a refused connection, a head timeout)
  std::string_view path;         // percent-decoded; "" as for method
  std::string_view context;      // HeadVerdict::context: the tenant once authenticated
  std::string_view client;       // the client's address
  int status = 0;
  std::uint64_t bytes_in = 0;    // body bytes received, as sent on the wire
  std::uint64_t bytes_out = 0;   // the answer's body bytes
  std::chrono::nanoseconds duration{0};  // from the request's first byte to its answer being ready
};

class Handler {
 public:
  virtual ~Handler() = default;
  // `framing` has passed detail::check_framing. Must not throw.
  virtual HeadVerdict on_head(const Request& head, const detail::Framing& framing) noexcept = 0;
  // The request with its body. Must not throw (an exception is answered 500).
  virtual Response serve(Request& request, HeadVerdict& verdict) noexcept = 0;
  // Every final answer written (each request once, and each connection refused at accept), for
  // the request log and metrics. Must not throw.
  virtual void answered(const Exchange& exchange) noexcept = 0;
};

class Transport {
 public:
  Transport(TransportOptions options, Handler& handler);
  ~Transport();  // stop()
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Binds and listens (backlog SOMAXCONN). Throws kiln::Error naming the address and port.
  void listen();
  int port() const noexcept;
  // Starts the I/O and handler threads.
  void start();
  // Stops accepting, closes idle connections, lets requests in progress finish and write their
  // answers (for up to `grace`), then ends every connection and joins the threads. Idempotent.
  void stop(std::chrono::milliseconds grace) noexcept;

  // Open connections now (for tests and metrics).
  std::size_t connections() const noexcept;

  struct Impl;  // transport.cpp's, shared with its connections

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::service::http
