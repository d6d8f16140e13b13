#include "http/transport.hpp"

#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>

#include "detail/error_body.hpp"
#include "http/body_decoder.hpp"
#include "http/connection_limits.hpp"
#include "http/request_id.hpp"
#include "kiln/driver/cpu_relax.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::service::http {

namespace {

namespace beast = boost::beast;
namespace net = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

Response error_response(int status, std::string_view code, std::string_view message, bool close) {
  Response r;
  r.status = status;
  r.set_content(detail::error_body(code, message), "application/json");
  r.close = close;
  return r;
}

// A few bytes written without waiting, for answers to a connection about to be closed (refused
// at accept, timed out): a client that does not read them loses nothing it was owed.
void send_now(tcp::socket& socket, const std::string& bytes) noexcept {
  (void)::send(socket.native_handle(), bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

// The headers of a request Beast refused, split as sent (name up to the colon, value trimmed), so
// that detail::check_framing can say what is wrong in the API's words.
struct RawHead {
  std::string_view method;
  std::vector<std::pair<std::string_view, std::string_view>> headers;
};

RawHead split_raw_head(std::string_view bytes) {
  RawHead head;
  std::size_t end = bytes.find("\r\n");
  head.method = bytes.substr(0, std::min(bytes.find(' '), end));
  while (end != std::string_view::npos) {
    const std::size_t start = end + 2;
    end = bytes.find("\r\n", start);
    const std::string_view line = bytes.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (line.empty()) break;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    head.headers.emplace_back(line.substr(0, colon), value);
  }
  return head;
}

class Connection;

// One event loop on one thread: the connections it was given, read, parsed and written there and
// nowhere else, so they need no locks and no strands. A sweep every kSweepPeriod ends those past
// their deadline: a deadline is a field the connection moves, not a timer re-armed per operation
// (each re-arm would post a cancelled wait and wake a thread).
struct Loop {
  net::io_context io{1};
  net::steady_timer sweep_timer{io};
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections;  // this loop's thread only
  std::thread thread;
};

constexpr std::chrono::milliseconds kSweepPeriod{100};

// The threads that serve requests that may block. A request goes to the thread that went idle
// last, handed to it directly: its core's caches still hold what the last request touched (a
// shared condition variable wakes the threads in turn, each on a cold core), and it polls for
// TransportOptions::handler_spin before sleeping, so a kept-alive client's next request, a round
// trip later, finds it awake. With none idle, requests wait in arrival order.
class HandlerPool {
 public:
  ~HandlerPool() { stop(); }

  void start(int n, std::chrono::microseconds spin, std::function<void(std::shared_ptr<Connection>)> serve) {
    serve_ = std::move(serve);
    spin_ = spin;
    workers_.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>());
    for (auto& w : workers_) w->thread = std::thread([this, &w = *w] { run(w); });
  }

  void submit(std::shared_ptr<Connection> c) {
    Worker* idle = nullptr;
    {
      std::lock_guard lock(mutex_);
      if (idle_.empty()) {
        backlog_.push_back(std::move(c));
        return;
      }
      idle = idle_.back();
      idle_.pop_back();
    }
    idle->give(std::move(c));
  }

  // Serves what is queued, then joins.
  void stop() {
    std::vector<Worker*> idle;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
      idle.swap(idle_);
    }
    for (Worker* w : idle) w->give(nullptr);  // an empty job: stop
    for (auto& w : workers_)
      if (w->thread.joinable()) w->thread.join();
  }

 private:
  struct Worker {
    std::mutex mutex;
    std::condition_variable wake;
    std::shared_ptr<Connection> job;
    std::atomic<bool> given{false};
    bool sleeping = false;
    std::thread thread;

    void give(std::shared_ptr<Connection> c) {
      bool notify;
      {
        std::lock_guard lock(mutex);
        job = std::move(c);
        given.store(true, std::memory_order_release);
        notify = sleeping;
      }
      if (notify) wake.notify_one();
    }

    // Polls for `spin` (a kept-alive client's next request comes about one loopback round trip
    // after its answer), then sleeps.
    std::shared_ptr<Connection> take(std::chrono::microseconds spin) {
      if (spin.count() > 0)
        for (const auto until = Clock::now() + spin; !given.load(std::memory_order_acquire) && Clock::now() < until;)
          for (int i = 0; i < 16; ++i) cpu_relax();
      std::unique_lock lock(mutex);
      sleeping = true;
      wake.wait(lock, [this] { return given.load(std::memory_order_acquire); });
      sleeping = false;
      given.store(false, std::memory_order_relaxed);
      return std::move(job);
    }
  };

  void run(Worker& self) {
    for (;;) {
      std::shared_ptr<Connection> job;
      {
        std::lock_guard lock(mutex_);
        if (!backlog_.empty()) {
          job = std::move(backlog_.front());
          backlog_.pop_front();
        } else if (stopping_) {
          return;
        } else {
          idle_.push_back(&self);
        }
      }
      if (!job) job = self.take(spin_);
      if (!job) return;  // stop() woke it
      serve_(std::move(job));
    }
  }

  std::function<void(std::shared_ptr<Connection>)> serve_;
  std::chrono::microseconds spin_{0};
  std::vector<std::unique_ptr<Worker>> workers_;
  std::mutex mutex_;
  std::vector<Worker*> idle_;  // a stack: the last to go idle is the first given work
  std::deque<std::shared_ptr<Connection>> backlog_;
  bool stopping_ = false;
};

}  // namespace

struct Transport::Impl {
  Impl(TransportOptions o, Handler& h)
      : options(std::move(o)), handler(h), limits(options.max_connections, options.max_connections_per_client) {
    for (int i = 0; i < std::max(1, options.io_threads); ++i) loops.push_back(std::make_unique<Loop>());
    acceptor.emplace(loops.front()->io);
    retry_timer.emplace(loops.front()->io);
  }

  TransportOptions options;
  Handler& handler;
  ConnectionLimits limits;
  std::vector<std::unique_ptr<Loop>> loops;
  std::optional<tcp::acceptor> acceptor;          // on the first loop
  std::optional<net::steady_timer> retry_timer;  // accepting again after running out of descriptors
  std::size_t next_loop = 0;                      // the first loop's thread only
  HandlerPool pool;
  std::atomic<int> bound_port{0};
  std::atomic<bool> stopping{false};
  std::atomic<bool> stopped{false};
  bool started = false;

  void accept();
  void on_accept(beast::error_code ec, tcp::socket socket, Loop& loop);
  void sweep(Loop& loop);
};

namespace {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Transport::Impl& t, Loop& loop, tcp::socket socket, ConnectionLimits::Ticket ticket, std::string client)
      : t_(t), loop_(loop), socket_(std::move(socket)), buffer_(t.options.max_header_bytes + 64 * 1024), ticket_(std::move(ticket)),
        client_(std::move(client)) {}

  // On the connection's loop.
  void start() {
    loop_.connections.emplace(this, weak_from_this());
    wait_request(/*first=*/true);
  }

  // The sweep, on the loop: a deadline that has passed cancels what the connection waits on, and
  // timed_out_ tells its completion why.
  void check_deadline(Clock::time_point now) {
    if (now < deadline_) return;
    deadline_ = Clock::time_point::max();
    timed_out_ = true;
    beast::error_code ignored;
    socket_.cancel(ignored);
  }

  // At stop, on the loop: a connection between requests (or still reading one) is closed; one being
  // served writes its answer and closes after it.
  void close_unless_serving() {
    if (phase_ != Phase::serving && phase_ != Phase::writing) close();
  }

  // On a handler thread: serves a request that may block, and writes the answer from here without
  // waiting (the loop leaves a connection alone while it is served); what the socket does not take
  // at once, and the next request, go back to the loop.
  void serve_blocking() {
    Response answer = t_.handler.serve(request_, verdict_);
    prepare(std::move(answer));
    std::size_t sent = 0;
    bool broken = false;
    while (sent < out_.size()) {
      const ssize_t n = ::send(socket_.native_handle(), out_.data() + sent, out_.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<std::size_t>(n);
      else if (n < 0 && errno == EINTR) continue;
      else {
        broken = n < 0 && errno != EAGAIN && errno != EWOULDBLOCK;
        break;
      }
    }
    net::post(loop_.io, [self = shared_from_this(), sent, broken] {
      if (broken) return self->close();
      if (sent == self->out_.size()) return self->on_written({});
      self->write_from(sent);
    });
  }

 private:
  enum class Phase { waiting, head, body, serving, writing, lingering, closed };

  // Waits for the first byte of the next request: a kept-alive connection may stay quiet for
  // idle_timeout, a new one for header_timeout. Bytes already read (a pipelined request) go on.
  void wait_request(bool first) {
    if (t_.stopping.load(std::memory_order_acquire)) return close();
    phase_ = Phase::waiting;
    if (buffer_.size() > 0) return read_head();
    arm(Clock::now() + (first ? t_.options.header_timeout : t_.options.idle_timeout));
    socket_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->buffer_.commit(n);
      if (ec) return self->close();  // timed out idle, closed by the client, or closed at stop
      self->read_head();
    });
  }

  // Reads until the buffer holds a whole head (request line and headers), then parses it with
  // Beast from the buffer: what Beast refuses is still there, as sent, for refuse_malformed().
  void read_head() {
    phase_ = Phase::head;
    head_started_ = Clock::now();
    request_id_.clear();
    wire_bytes_ = 0;
    verdict_ = HeadVerdict{};  // nothing of the previous request (its tenant) describes this one
    scanned_ = 0;
    parser_.emplace();
    parser_->body_limit(boost::none);  // BodyDecoder holds the limits, on decoded bytes
    arm(head_started_ + t_.options.header_timeout);
    parse_head_or_read_more();
  }

  void parse_head_or_read_more() {
    const auto data = buffer_.data();
    const std::string_view text(static_cast<const char*>(data.data()), data.size());
    const std::size_t end = text.find("\r\n\r\n", scanned_ > 3 ? scanned_ - 3 : 0);
    if (end == std::string_view::npos || end + 4 > t_.options.max_header_bytes) {
      if (text.size() > t_.options.max_header_bytes) return refuse_large_head(text);
      scanned_ = text.size();
      socket_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
        self->buffer_.commit(n);
        if (self->timed_out_)
          return self->refuse_now(408, "the request's headers did not arrive within header_timeout_ms");
        if (ec) return self->close();  // the client went away (or stop() closed it)
        self->parse_head_or_read_more();
      });
      return;
    }
    beast::error_code ec;
    const std::size_t used = parser_->put(net::buffer(data.data(), end + 4), ec);
    if (ec || !parser_->is_header_done()) return refuse_malformed(ec, text.substr(0, end + 4));
    buffer_.consume(used);
    on_head();
  }

  void on_head() {
    auto& message = parser_->get();
    request_ = Request{};
    request_.method = std::string(message.method_string());
    request_.target = std::string(message.target());
    request_.version = message.version();
    request_.headers.reserve(16);
    for (const auto& field : message) request_.headers.emplace_back(field.name_string(), field.value());
    request_id_ = request_id_for(request_.header_value(kRequestIdHeader));
    request_.request_id = request_id_;
    head_only_ = request_.method == "HEAD";
    keep_alive_ = parser_->keep_alive();
    if (request_.version != 10 && request_.version != 11)
      return respond(error_response(505, "http_version_not_supported", "kilnd speaks HTTP/1.0 and HTTP/1.1", true));
    if (request_.target.size() > t_.options.max_target_bytes)
      return respond(error_response(414, "uri_too_long",
                                    "the request target exceeds " + std::to_string(t_.options.max_target_bytes / 1024) + " KiB",
                                    true));
    split_target(request_.target, request_.path, request_.query);

    std::vector<std::pair<std::string_view, std::string_view>> fields;
    fields.reserve(request_.headers.size());
    for (const auto& [name, value] : request_.headers) fields.emplace_back(name, value);
    framing_ = {};
    if (auto refused = detail::check_framing(request_.method, fields, framing_))
      return respond(error_response(refused->status, detail::status_code_name(refused->status), refused->message, true));

    verdict_ = t_.handler.on_head(request_, framing_);
    if (verdict_.answer) {
      Response answer = std::move(*verdict_.answer);
      if (framing_.has_body()) answer.close = true;  // its body is left unread
      return respond(std::move(answer));
    }
    if (!framing_.has_body()) return dispatch();

    ContentCoding coding = ContentCoding::identity;
    if (!parse_content_coding(request_.header_value("Content-Encoding"), coding))
      return respond(error_response(415, "unsupported_media_type",
                                    "the body's Content-Encoding is not supported (kilnd decodes gzip and deflate)", true));
    decoder_.emplace(coding, verdict_.body_limit, t_.options.max_body_bytes);
    body_started_ = Clock::now();
    wire_bytes_ = 0;
    if (http::equals_ignoring_case(request_.header_value("Expect"), "100-continue")) {
      phase_ = Phase::writing;
      out_ = "HTTP/1.1 100 Continue\r\n\r\n";
      arm(Clock::now() + t_.options.write_timeout);
      net::async_write(socket_, net::buffer(out_), [self = shared_from_this()](beast::error_code e, std::size_t) {
        if (e) return self->close();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  // A head past max_header_bytes: 414 when its request line alone is past max_target_bytes.
  void refuse_large_head(std::string_view text) {
    const std::size_t line_end = text.find("\r\n");
    if ((line_end == std::string_view::npos ? text.size() : line_end) > t_.options.max_target_bytes)
      return respond(error_response(414, "uri_too_long",
                                    "the request line exceeds " + std::to_string(t_.options.max_target_bytes / 1024) + " KiB",
                                    true));
    respond(error_response(431, "request_header_fields_too_large",
                           "the request's headers exceed " + std::to_string(t_.options.max_header_bytes / 1024) + " KiB", true));
  }

  // A head Beast refused: check_framing on its raw headers names the fault when it is one of
  // framing (several lengths, a length and chunked, a name that is not a token); anything else is
  // a plain 400.
  void refuse_malformed(beast::error_code ec, std::string_view head) {
    const RawHead raw = split_raw_head(head);
    for (const auto& [name, value] : raw.headers)
      if (equals_ignoring_case(name, kRequestIdHeader)) {
        request_id_ = request_id_for(value);  // the answer carries the client's id all the same
        break;
      }
    detail::Framing framing;
    if (auto refused = detail::check_framing(raw.method, raw.headers, framing))
      return respond(error_response(refused->status, detail::status_code_name(refused->status), refused->message, true));
    respond(error_response(400, "bad_request", "malformed HTTP request (request line or headers): " + ec.message(), true));
  }

  // The body's deadline: body_timeout from its start, and more for each byte received at
  // min_body_rate, so a large upload at a fair rate finishes and a trickle does not.
  Clock::time_point body_deadline() const {
    const auto allowance = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(static_cast<double>(wire_bytes_) / static_cast<double>(t_.options.min_body_rate)));
    return body_started_ + t_.options.body_timeout + allowance;
  }

  void read_body() {
    phase_ = Phase::body;
    if (chunk_.empty()) chunk_.resize(64 * 1024);
    auto& body = parser_->get().body();
    body.data = chunk_.data();
    body.size = chunk_.size();
    arm(body_deadline());
    bhttp::async_read_some(socket_, buffer_, *parser_,
                           [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_body(ec); });
  }

  void on_body(beast::error_code ec) {
    if (ec == bhttp::error::need_buffer) ec = {};
    const std::size_t got = chunk_.size() - parser_->get().body().size;
    wire_bytes_ += got;
    if (timed_out_)
      return refuse_now(408, "the request's body did not arrive within body_timeout_ms at min_body_rate");
    if (ec == bhttp::error::partial_message || ec == net::error::eof || ec == net::error::connection_reset ||
        ec == net::error::operation_aborted)
      return close();  // the client went away mid-body
    if (ec)
      return respond(error_response(400, "bad_request",
                                    "the request body could not be read (malformed chunked encoding): " + ec.message(), true));
    BodyDecoder::State state = decoder_->feed(chunk_.data(), got);
    if (state == BodyDecoder::State::reading && parser_->is_done()) state = decoder_->finish();
    if (state == BodyDecoder::State::over_max)
      return respond(error_response(413, "payload_too_large",
                                    "the request body exceeds the service's limit (max_body_bytes = " +
                                        std::to_string(t_.options.max_body_bytes) + ")",
                                    true));
    if (state == BodyDecoder::State::malformed)
      return respond(error_response(400, "bad_request", "the request body's compressed data is malformed", true));
    if (!parser_->is_done()) return read_body();
    if (decoder_->over_keep_limit())
      return respond(error_response(413, "payload_too_large",
                                    "the " + std::string(verdict_.limit_name == "max_json_bytes" ? "JSON " : "") + "body has " +
                                        std::to_string(decoder_->decoded_bytes()) + " bytes; the limit (" +
                                        std::string(verdict_.limit_name) + ") is " + std::to_string(verdict_.body_limit),
                                    false));
    request_.body = decoder_->take();
    decoder_.reset();
    dispatch();
  }

  void dispatch() {
    phase_ = Phase::serving;
    disarm();
    request_.read_at = Clock::now();
    if (verdict_.may_block) return t_.pool.submit(shared_from_this());
    prepare(t_.handler.serve(request_, verdict_));
    write_from(0);
  }

  void respond(Response answer) {
    prepare(std::move(answer));
    write_from(0);
  }

  // The answer as bytes in out_, and whether the connection ends after it. Also called on a handler
  // thread, so it leaves phase_ (the loop's) alone.
  void prepare(Response answer) {
    if (!keep_alive_ || t_.stopping.load(std::memory_order_acquire)) answer.close = true;
    close_after_ = answer.close;
    stamp(answer);
    out_ = serialize(answer, head_only_);
  }

  // The request id on the answer (one is made for a request whose head was never read), and the
  // exchange reported to the handler.
  void stamp(Response& answer) {
    if (request_id_.empty()) request_id_ = make_request_id();
    answer.set_header(std::string(kRequestIdHeader), request_id_);
    Exchange e;
    e.request_id = request_id_;
    e.method = request_.method;
    e.path = request_.path;
    e.context = verdict_.context;
    e.client = client_;
    e.status = answer.status;
    e.bytes_in = wire_bytes_;
    e.bytes_out = answer.body.size();
    e.duration = head_started_ == Clock::time_point{} ? Clock::duration{} : Clock::now() - head_started_;
    t_.handler.answered(e);
  }

  void write_from(std::size_t offset) {
    phase_ = Phase::writing;
    arm(Clock::now() + t_.options.write_timeout);
    net::async_write(socket_, net::buffer(out_.data() + offset, out_.size() - offset),
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_written(ec); });
  }

  void on_written(beast::error_code ec) {
    std::string().swap(out_);
    if (ec || timed_out_) return close();
    if (close_after_) return linger_close();
    parser_.reset();
    request_ = Request{};
    wait_request(/*first=*/false);
  }

  // A final answer for a connection that is ending anyway (a deadline passed): written without
  // waiting, then closed.
  void refuse_now(int status, std::string_view message) {
    Response r = error_response(status, detail::status_code_name(status), message, true);
    stamp(r);
    send_now(socket_, serialize(r, false));
    linger_close();
  }

  // Closing a socket with unread input sends a reset, and a reset can reach the client before it
  // has read the answer (RFC 9112 9.6): the sending side is shut first, and what the client still
  // sends is read and dropped for a moment (1 MiB or 2 s at most) before the close.
  void linger_close() {
    if (phase_ == Phase::closed || phase_ == Phase::lingering) return;
    phase_ = Phase::lingering;
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    arm(Clock::now() + std::chrono::seconds(2));
    lingered_ = 0;
    drain();
  }

  void drain() {
    if (chunk_.empty()) chunk_.resize(64 * 1024);
    socket_.async_read_some(net::buffer(chunk_), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->lingered_ += n;
      if (ec || self->timed_out_ || self->lingered_ > (1u << 20)) return self->close();
      self->drain();
    });
  }

  void close() {
    if (phase_ == Phase::closed) return;
    phase_ = Phase::closed;
    disarm();
    loop_.connections.erase(this);
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  // What the connection waits on next must end by `when` (the loop's sweep enforces it).
  void arm(Clock::time_point when) {
    timed_out_ = false;
    deadline_ = when;
  }

  void disarm() {
    timed_out_ = false;
    deadline_ = Clock::time_point::max();
  }

  Transport::Impl& t_;
  Loop& loop_;
  tcp::socket socket_;
  Clock::time_point deadline_ = Clock::time_point::max();
  bool timed_out_ = false;
  std::size_t lingered_ = 0;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::buffer_body>> parser_;
  Request request_;
  detail::Framing framing_;
  HeadVerdict verdict_;
  std::optional<BodyDecoder> decoder_;
  std::vector<char> chunk_;
  Clock::time_point head_started_{}, body_started_{};
  std::uint64_t wire_bytes_ = 0;
  std::size_t scanned_ = 0;  // bytes of the buffer searched for the head's end
  bool keep_alive_ = true, head_only_ = false, close_after_ = false;
  std::string out_;
  Phase phase_ = Phase::waiting;
  ConnectionLimits::Ticket ticket_;
  std::string client_;      // the peer's address
  std::string request_id_;  // this request's (request_id.hpp); "" until its head is read
};

bool out_of_descriptors(const beast::error_code& ec) {
  return ec == net::error::no_descriptors || ec == net::error::no_buffer_space || ec == net::error::no_memory ||
         ec.value() == ENFILE;
}

}  // namespace

void Transport::Impl::accept() {
  // New connections go to the loops in turn; each socket belongs to its loop's io_context.
  Loop& loop = *loops[next_loop++ % loops.size()];
  acceptor->async_accept(loop.io, [this, &loop](beast::error_code ec, tcp::socket socket) {
    on_accept(ec, std::move(socket), loop);
  });
}

void Transport::Impl::on_accept(beast::error_code ec, tcp::socket socket, Loop& loop) {
  if (stopping.load(std::memory_order_acquire) || ec == net::error::operation_aborted) return;
  if (ec) {
    // Out of descriptors: the pending connection stays in the backlog; try again shortly rather
    // than spin on the same error.
    if (out_of_descriptors(ec)) {
      retry_timer->expires_after(std::chrono::milliseconds(50));
      retry_timer->async_wait([this](beast::error_code e) {
        if (!e) accept();
      });
      return;
    }
    return accept();
  }
  beast::error_code ignored;
  const auto peer = socket.remote_endpoint(ignored);
  const std::string address = ignored ? std::string("unknown") : peer.address().to_string();
  ConnectionLimits::Refusal why = ConnectionLimits::Refusal::none;
  ConnectionLimits::Ticket ticket = limits.admit(address, why);
  if (!ticket) {
    const std::string message = why == ConnectionLimits::Refusal::total
                                    ? "kilnd holds max_connections (" + std::to_string(limits.max_total()) + ") connections"
                                    : "this client address holds max_connections_per_client (" +
                                          std::to_string(limits.max_per_address()) + ") connections";
    Response r = error_response(503, "too_many_connections", message, true);
    r.set_header("Retry-After", "1");
    const std::string request_id = make_request_id();
    r.set_header(std::string(kRequestIdHeader), request_id);
    Exchange e;
    e.request_id = request_id;
    e.client = address;
    e.status = 503;
    e.bytes_out = r.body.size();
    handler.answered(e);
    send_now(socket, serialize(r, false));
    socket.close(ignored);
    return accept();
  }
  socket.set_option(tcp::no_delay(true), ignored);  // an answer is one write; never wait on a delayed ACK
  auto connection = std::make_shared<Connection>(*this, loop, std::move(socket), std::move(ticket), address);
  net::post(loop.io, [connection] { connection->start(); });
  accept();
}

void Transport::Impl::sweep(Loop& loop) {
  loop.sweep_timer.expires_after(kSweepPeriod);
  loop.sweep_timer.async_wait([this, &loop](beast::error_code ec) {
    if (ec) return;
    const Clock::time_point now = Clock::now();
    for (auto it = loop.connections.begin(); it != loop.connections.end();) {
      auto c = it->second.lock();
      if (!c) {
        it = loop.connections.erase(it);
        continue;
      }
      ++it;  // check_deadline may close the connection, which erases its entry
      c->check_deadline(now);
    }
    sweep(loop);
  });
}

Transport::Transport(TransportOptions options, Handler& handler)
    : impl_(std::make_unique<Impl>(std::move(options), handler)) {}

Transport::~Transport() { stop(std::chrono::milliseconds(0)); }

void Transport::listen() {
  Impl& s = *impl_;
  const std::string where = s.options.address + ":" + std::to_string(s.options.port);
  beast::error_code ec;
  tcp::resolver resolver(s.loops.front()->io);
  const auto endpoints = resolver.resolve(s.options.address, std::to_string(s.options.port),
                                          tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty())
    throw Error(Errc::invalid_argument, "cannot listen on " + where + " (not an address of this machine: " + ec.message() + ")");
  std::string why;
  for (const auto& entry : endpoints) {
    beast::error_code e;
    tcp::acceptor& a = *s.acceptor;
    a.open(entry.endpoint().protocol(), e);
    if (!e) a.set_option(net::socket_base::reuse_address(true), e);
    if (!e) a.bind(entry.endpoint(), e);
    if (!e) a.listen(net::socket_base::max_listen_connections, e);
    if (!e) {
      s.bound_port = a.local_endpoint().port();
      return;
    }
    why = e.message();
    beast::error_code ignored;
    a.close(ignored);
  }
  throw Error(Errc::invalid_argument,
              "cannot listen on " + where + " (address in use, or not an address of this machine: " + why + ")");
}

int Transport::port() const noexcept { return impl_->bound_port.load(); }

void Transport::start() {
  Impl& s = *impl_;
  if (s.started) return;
  s.started = true;
  s.pool.start(s.options.handler_threads, s.options.handler_spin, [](std::shared_ptr<Connection> c) { c->serve_blocking(); });
  net::post(s.loops.front()->io, [&s] { s.accept(); });
  for (auto& loop : s.loops) {
    Loop& l = *loop;
    net::post(l.io, [&s, &l] { s.sweep(l); });
    l.thread = std::thread([&l] {
      auto work = net::make_work_guard(l.io);
      for (;;) {
        try {
          l.io.run();
          return;
        } catch (...) {
          // A completion handler threw (a bug, or memory ran out): the loop goes on serving.
        }
      }
    });
  }
}

void Transport::stop(std::chrono::milliseconds grace) noexcept {
  Impl& s = *impl_;
  if (s.stopped.exchange(true)) return;
  s.stopping.store(true, std::memory_order_release);
  try {
    net::post(s.loops.front()->io, [&s] {
      beast::error_code ignored;
      s.acceptor->close(ignored);
      s.retry_timer->cancel();
    });
    for (auto& loop : s.loops)
      net::post(loop->io, [&l = *loop] {
        for (auto it = l.connections.begin(); it != l.connections.end();) {
          auto c = it->second.lock();
          ++it;
          if (c) c->close_unless_serving();
        }
      });
    // Requests being served finish and write their answers; then every connection is gone.
    const auto until = Clock::now() + grace;
    while (s.started && s.limits.open() > 0 && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  } catch (...) {
  }
  for (auto& loop : s.loops) loop->io.stop();
  for (auto& loop : s.loops)
    if (loop->thread.joinable()) loop->thread.join();
  s.pool.stop();
}

std::size_t Transport::connections() const noexcept {
  try {
    return impl_->limits.open();
  } catch (...) {
    return 0;
  }
}

}  // namespace kiln::service::http
