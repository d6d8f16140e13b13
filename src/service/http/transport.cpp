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
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>

#include "detail/error_body.hpp"
#include "http/body_decoder.hpp"
#include "http/connection_limits.hpp"
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

// Blocking handlers take one of `n` slots; a request that finds none waits its turn in order.
// Whoever gives a slot back hands it to the oldest waiter.
class HandlerSlots {
 public:
  explicit HandlerSlots(int n) : free_(n) {}
  bool try_take() {
    std::lock_guard lock(mutex_);
    if (free_ == 0) return false;
    --free_;
    return true;
  }
  // Runs `resume` (which owns a slot) when one is free: now, on this thread, or later on the thread
  // that gives one back.
  void take_or_wait(std::function<void()> resume) {
    {
      std::lock_guard lock(mutex_);
      if (free_ == 0) {
        waiting_.push_back(std::move(resume));
        return;
      }
      --free_;
    }
    resume();
  }
  void give_back() {
    std::function<void()> next;
    {
      std::lock_guard lock(mutex_);
      if (waiting_.empty()) {
        ++free_;
        return;
      }
      next = std::move(waiting_.front());
      waiting_.pop_front();
    }
    next();
  }
  void drop_waiters() {
    std::deque<std::function<void()>> dropped;
    std::lock_guard lock(mutex_);
    dropped.swap(waiting_);
  }

 private:
  std::mutex mutex_;
  int free_;
  std::deque<std::function<void()>> waiting_;
};

class Connection;

}  // namespace

struct Transport::Impl {
  Impl(TransportOptions o, Handler& h)
      : options(std::move(o)),
        handler(h),
        limits(options.max_connections, options.max_connections_per_client),
        slots(options.handler_threads),
        acceptor(net::make_strand(io)),
        retry_timer(acceptor.get_executor()) {}

  TransportOptions options;
  Handler& handler;
  ConnectionLimits limits;
  HandlerSlots slots;
  net::io_context io;
  tcp::acceptor acceptor;
  net::steady_timer retry_timer;  // accepting again after running out of descriptors
  std::vector<std::thread> threads;
  std::atomic<int> bound_port{0};
  std::atomic<bool> stopping{false};
  std::atomic<bool> stopped{false};

  std::mutex registry_mutex;
  std::condition_variable registry_changed;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> registry;

  void accept();
  void on_accept(beast::error_code ec, tcp::socket socket);
};

namespace {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Transport::Impl& t, tcp::socket socket, ConnectionLimits::Ticket ticket)
      : t_(t),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        buffer_(t.options.max_header_bytes + 64 * 1024),
        ticket_(std::move(ticket)) {}

  ~Connection() {
    std::lock_guard lock(t_.registry_mutex);
    t_.registry.erase(this);
    t_.registry_changed.notify_all();
  }

  void start() {
    {
      std::lock_guard lock(t_.registry_mutex);
      t_.registry.emplace(this, weak_from_this());
    }
    net::post(socket_.get_executor(), [self = shared_from_this()] { self->wait_request(/*first=*/true); });
  }

  // At stop: a connection between requests (or still reading one) is closed; one being served
  // writes its answer and closes after it.
  void close_unless_serving() {
    net::post(socket_.get_executor(), [self = shared_from_this()] {
      if (self->phase_ != Phase::serving && self->phase_ != Phase::writing) self->close();
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
    if (!verdict_.may_block) return respond(t_.handler.serve(request_, verdict_));
    // The slot's owner resumes on this connection's strand, whichever thread freed the slot.
    t_.slots.take_or_wait([self = shared_from_this()] {
      net::dispatch(self->socket_.get_executor(), [self] {
        Response answer = self->t_.handler.serve(self->request_, self->verdict_);
        self->t_.slots.give_back();
        self->respond(std::move(answer));
      });
    });
  }

  void respond(Response answer) {
    phase_ = Phase::writing;
    if (!keep_alive_ || t_.stopping.load(std::memory_order_acquire)) answer.close = true;
    close_after_ = answer.close;
    t_.handler.answered(answer.status);
    out_ = serialize(answer, head_only_);
    arm(Clock::now() + t_.options.write_timeout);
    net::async_write(socket_, net::buffer(out_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_written(ec);
    });
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
    t_.handler.answered(status);
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
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  // One deadline at a time for whatever the connection waits on: when it passes, the pending
  // operation is cancelled and timed_out_ tells its completion why. A generation number keeps a
  // deadline that fired just before it was replaced from cancelling the next operation.
  void arm(Clock::time_point when) {
    timed_out_ = false;
    const std::uint64_t generation = ++deadline_generation_;
    timer_.expires_at(when);
    timer_.async_wait([self = shared_from_this(), generation](beast::error_code ec) {
      if (ec || generation != self->deadline_generation_) return;
      self->timed_out_ = true;
      beast::error_code ignored;
      self->socket_.cancel(ignored);
    });
  }

  void disarm() {
    ++deadline_generation_;
    timed_out_ = false;
    timer_.cancel();
  }

  Transport::Impl& t_;
  tcp::socket socket_;
  net::steady_timer timer_;
  std::uint64_t deadline_generation_ = 0;
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
};

bool out_of_descriptors(const beast::error_code& ec) {
  return ec == net::error::no_descriptors || ec == net::error::no_buffer_space || ec == net::error::no_memory ||
         ec.value() == ENFILE;
}

}  // namespace

void Transport::Impl::accept() {
  acceptor.async_accept(net::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
    on_accept(ec, std::move(socket));
  });
}

void Transport::Impl::on_accept(beast::error_code ec, tcp::socket socket) {
  if (stopping.load(std::memory_order_acquire) || ec == net::error::operation_aborted) return;
  if (ec) {
    // Out of descriptors: the pending connection stays in the backlog; try again shortly rather
    // than spin on the same error.
    if (out_of_descriptors(ec)) {
      retry_timer.expires_after(std::chrono::milliseconds(50));
      retry_timer.async_wait([this](beast::error_code e) {
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
    handler.answered(503);
    send_now(socket, serialize(r, false));
    socket.close(ignored);
    return accept();
  }
  socket.set_option(tcp::no_delay(true), ignored);  // an answer is one write; never wait on a delayed ACK
  std::make_shared<Connection>(*this, std::move(socket), std::move(ticket))->start();
  accept();
}

Transport::Transport(TransportOptions options, Handler& handler)
    : impl_(std::make_unique<Impl>(std::move(options), handler)) {}

Transport::~Transport() { stop(std::chrono::milliseconds(0)); }

void Transport::listen() {
  Impl& s = *impl_;
  const std::string where = s.options.address + ":" + std::to_string(s.options.port);
  beast::error_code ec;
  tcp::resolver resolver(s.io);
  const auto endpoints = resolver.resolve(s.options.address, std::to_string(s.options.port),
                                          tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty())
    throw Error(Errc::invalid_argument, "cannot listen on " + where + " (not an address of this machine: " + ec.message() + ")");
  std::string why;
  for (const auto& entry : endpoints) {
    beast::error_code e;
    tcp::acceptor& a = s.acceptor;
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
  net::post(s.acceptor.get_executor(), [&s] { s.accept(); });
  // The I/O threads and the handler pool run one event loop: a blocking handler holds one of the
  // handler_threads slots, so io_threads threads are always left to read and write.
  const int n = s.options.io_threads + s.options.handler_threads;
  s.threads.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) s.threads.emplace_back([&s] { s.io.run(); });
}

void Transport::stop(std::chrono::milliseconds grace) noexcept {
  Impl& s = *impl_;
  if (s.stopped.exchange(true)) return;
  s.stopping.store(true, std::memory_order_release);
  try {
    net::post(s.acceptor.get_executor(), [&s] {
      beast::error_code ignored;
      s.acceptor.close(ignored);
      s.retry_timer.cancel();
    });
    std::vector<std::shared_ptr<Connection>> open;
    {
      std::lock_guard lock(s.registry_mutex);
      for (auto& [raw, weak] : s.registry)
        if (auto c = weak.lock()) open.push_back(std::move(c));
    }
    for (auto& c : open) c->close_unless_serving();
    open.clear();
    std::unique_lock lock(s.registry_mutex);
    if (!s.threads.empty()) s.registry_changed.wait_for(lock, grace, [&s] { return s.registry.empty(); });
  } catch (...) {
  }
  s.slots.drop_waiters();
  s.io.stop();
  for (auto& t : s.threads)
    if (t.joinable()) t.join();
  s.threads.clear();
}

std::size_t Transport::connections() const noexcept {
  try {
    return impl_->limits.open();
  } catch (...) {
    return 0;
  }
}

}  // namespace kiln::service::http
