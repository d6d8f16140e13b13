// Issue 13's probes of the event-driven front end over real loopback TCP: half-sent requests,
// trickled headers and bodies, thousands of idle kept-alive connections, clients that vanish
// mid-body, pipelined requests and garbage, connection limits per client address. In each, a
// well-behaved client is still answered. Deadlines are set short here and every wait has a
// generous failure bound: the assertions are about what the server does, not how fast CI is.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "support/compile_bomb.hpp"
#include "support/http_fixture.hpp"
#include "support/raw_http.hpp"

namespace kiln::testing {
namespace {

using namespace std::chrono_literals;

// A connection from a chosen loopback address (127.0.0.0/8 is all loopback on Linux), so the
// per-client limit can be seen from one machine. Closed when it goes.
class SocketFrom {
 public:
  SocketFrom(const char* source, int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in from{};
    from.sin_family = AF_INET;
    inet_pton(AF_INET, source, &from.sin_addr);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&from), sizeof from);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0;
  }
  ~SocketFrom() {
    if (fd_ >= 0) ::close(fd_);
  }
  SocketFrom(const SocketFrom&) = delete;
  SocketFrom& operator=(const SocketFrom&) = delete;
  bool connected() const { return connected_; }
  bool send(std::string_view bytes) { return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()); }
  // What the server wrote before closing (or within `timeout`).
  std::string read_until_closed(std::chrono::milliseconds timeout = 20s) {
    std::string out;
    timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

// Enough descriptors for `n` connections and both of their ends in this process.
std::size_t usable_connections(std::size_t wanted) {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
  }
  const std::size_t room = limit.rlim_cur > 512 ? (limit.rlim_cur - 512) / 2 : 0;
  return std::min(wanted, room);
}

class HttpSlowClients : public ServiceFixture {
 protected:
  void SetUp() override {
    ServiceFixture::SetUp();
    config_.header_timeout = 1000ms;
    config_.body_timeout = 1000ms;
    config_.min_body_rate = 1000;
  }

  // /healthz on a new connection answers 200 (within a failure bound).
  void expect_healthz_answers(const char* while_what) {
    auto r = raw_exchange(server_->port(), "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    ASSERT_TRUE(r) << "/healthz got no answer while " << while_what;
    EXPECT_EQ(r->status, 200) << while_what;
  }
};

TEST_F(HttpSlowClients, HalfSentRequestsStallNoOneAndEndAtTheHeaderDeadline) {
  config_.http_threads = 2;  // cpp-httplib's thread per connection: 2 half requests stalled everyone
  start();
  std::vector<std::unique_ptr<RawConnection>> half;
  for (int i = 0; i < 64; ++i) {
    half.push_back(std::make_unique<RawConnection>(server_->port()));
    ASSERT_TRUE(half.back()->send("GET /healthz HTTP/1.1\r\nHost: t\r\n"));  // no blank line: never ends
  }
  std::vector<std::unique_ptr<RawConnection>> silent;
  for (int i = 0; i < 128; ++i) silent.push_back(std::make_unique<RawConnection>(server_->port()));
  expect_healthz_answers("192 connections held half-sent or silent requests");
  // Each ends at header_timeout with a 408 (the half-sent ones) or a close (the silent ones).
  auto r = half.front()->read_response(20s);
  ASSERT_TRUE(r) << "a half-sent request was neither answered nor closed";
  EXPECT_EQ(r->status, 408) << r->body;
  EXPECT_TRUE(half.front()->closed_by_server(20s));
  EXPECT_TRUE(silent.front()->closed_by_server(20s)) << "a connection that sent nothing stayed open";
}

TEST_F(HttpSlowClients, AHeaderTrickledAByteAtATimeEndsAtItsDeadline) {
  start();
  RawConnection trickle(server_->port());
  // One byte every 50 ms never ends the head (the header grows without a blank line): with a
  // deadline that each byte restarted, this would go on for as long as the bytes last (10 s).
  const std::string bytes = "GET /healthz HTTP/1.1\r\nX-Slow: " + std::string(200, 'a');
  bool ended = false;
  for (char c : bytes) {
    if (!trickle.send(std::string_view(&c, 1))) {
      ended = true;
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  if (!ended) ended = trickle.closed_by_server(1ms);
  EXPECT_TRUE(ended) << "the server still read a header trickled for 10 s with header_timeout 1 s";
  expect_healthz_answers("a header was trickled");
}

TEST_F(HttpSlowClients, ABodyBelowTheMinimumRateEndsWithA408) {
  start();
  RawConnection slow(server_->port());
  const std::string head = "POST /v1/buffers HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + std::string(kAliceToken) +
                           "\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n";
  ASSERT_TRUE(slow.send(head));
  // 10 bytes every 100 ms is 100 B/s: a tenth of min_body_rate; the body would take 1000 s.
  for (int i = 0; i < 200 && slow.send(std::string(10, ' ')); ++i) std::this_thread::sleep_for(100ms);
  auto r = slow.read_response(20s);
  ASSERT_TRUE(r) << "a body trickled below min_body_rate was neither refused nor closed";
  EXPECT_EQ(r->status, 408) << r->body;
  EXPECT_NE(r->body.find("min_body_rate"), std::string::npos) << r->body;
  expect_healthz_answers("a body was trickled");
}

TEST_F(HttpSlowClients, ThousandsOfIdleKeptAliveConnectionsCostNoThread) {
  config_.http_threads = 2;
  config_.http_io_threads = 1;
  start();
  const std::size_t n = usable_connections(2000);
  ASSERT_GE(n, 500u) << "this machine allows too few descriptors for the test";
  std::vector<std::unique_ptr<RawConnection>> idle;
  idle.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    idle.push_back(std::make_unique<RawConnection>(server_->port()));
    ASSERT_TRUE(idle.back()->send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"));
  }
  for (auto& c : idle) {
    auto r = c->read_response(30s);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
  }
  // All of them kept alive and quiet, on 3 threads: another client is answered, and so is each
  // of them again.
  expect_healthz_answers("thousands of kept-alive connections were idle");
  for (std::size_t i = 0; i < n; i += n / 10) {
    ASSERT_TRUE(idle[i]->send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"));
    auto r = idle[i]->read_response(30s);
    ASSERT_TRUE(r) << "kept-alive connection " << i << " was dropped";
    EXPECT_EQ(r->status, 200);
  }
}

TEST_F(HttpSlowClients, ClientsThatVanishMidBodyLoseOnlyTheirRequest) {
  start();
  const std::string head = "PUT /v1/buffers/1/data HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + std::string(kAliceToken) +
                           "\r\nContent-Length: 1000000\r\n\r\n";
  for (int i = 0; i < 50; ++i) {
    RawConnection c(server_->port());
    ASSERT_TRUE(c.send(head));
    ASSERT_TRUE(c.send(std::string(1000 * (i + 1), 'x')));
  }  // each closes with most of its body unsent
  for (int i = 0; i < 20; ++i) {
    RawConnection c(server_->port());
    ASSERT_TRUE(c.send("POST /v1/kernels HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + std::string(kAliceToken) +
                       "\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n" + std::string(300, '{')));
  }
  expect_healthz_answers("clients vanished mid-body");
  auto list = get("/v1/kernels");
  ASSERT_TRUE(list);
  EXPECT_EQ(list->status, 200) << list->body;
}

TEST_F(HttpSlowClients, PipelinedRequestsAreAnsweredInOrderAndGarbageEndsTheConnection) {
  start();
  RawConnection c(server_->port());
  const std::string alice = "Authorization: Bearer " + std::string(kAliceToken) + "\r\n";
  ASSERT_TRUE(c.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
                     "GET /v1/jobs/7 HTTP/1.1\r\nHost: t\r\n" + alice + "\r\n"
                     "POST /v1/buffers HTTP/1.1\r\nHost: t\r\n" + alice + "Content-Length: 12\r\n\r\n{\"bytes\": 0}"
                     "\x01\x02 garbage \xff\r\n\r\n"));
  auto first = c.read_response();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);
  auto second = c.read_response();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 404) << second->body;
  EXPECT_NE(second->body.find("job 7"), std::string::npos) << second->body;
  auto third = c.read_response();
  ASSERT_TRUE(third);
  EXPECT_EQ(third->status, 400) << third->body;
  EXPECT_NE(third->body.find("bytes"), std::string::npos) << third->body;
  auto garbage = c.read_response();
  ASSERT_TRUE(garbage) << "the garbage after three requests got no answer";
  EXPECT_EQ(garbage->status, 400) << garbage->body;
  EXPECT_TRUE(is_utf8_json(garbage->body)) << garbage->body;
  EXPECT_TRUE(c.closed_by_server());
  expect_healthz_answers("a connection sent garbage");
}

TEST_F(HttpSlowClients, OneClientAddressHoldsAtMostItsShareOfConnections) {
  config_.max_connections_per_client = 4;
  config_.max_connections = 6;
  start();
  std::vector<std::unique_ptr<SocketFrom>> mine;
  for (int i = 0; i < 4; ++i) {
    mine.push_back(std::make_unique<SocketFrom>("127.0.0.2", server_->port()));
    ASSERT_TRUE(mine.back()->connected());
  }
  // The connections are counted once accepted: a request on each makes sure they are.
  for (auto& s : mine) ASSERT_TRUE(s->send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"));
  std::this_thread::sleep_for(200ms);
  SocketFrom fifth("127.0.0.2", server_->port());
  const std::string refused = fifth.read_until_closed();
  EXPECT_NE(refused.find("503"), std::string::npos) << refused;
  EXPECT_NE(refused.find("max_connections_per_client"), std::string::npos) << refused;
  // Another address still gets in, up to the total.
  SocketFrom other("127.0.0.3", server_->port());
  ASSERT_TRUE(other.send("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
  const std::string answer = other.read_until_closed();
  EXPECT_NE(answer.find("200 OK"), std::string::npos) << answer;
  // A slot comes back when a connection closes.
  mine.pop_back();
  std::string again;
  for (int attempt = 0; attempt < 100 && again.find("200 OK") == std::string::npos; ++attempt) {
    SocketFrom retry("127.0.0.2", server_->port());
    retry.send("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    again = retry.read_until_closed();
    if (again.find("200 OK") == std::string::npos) std::this_thread::sleep_for(50ms);
  }
  EXPECT_NE(again.find("200 OK"), std::string::npos) << again;
}

TEST_F(HttpSlowClients, ExpectContinueGetsA100BeforeTheBodyIsSent) {
  start();
  RawConnection c(server_->port());
  const std::string body = R"({"bytes": 0})";
  ASSERT_TRUE(c.send("POST /v1/buffers HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + std::string(kAliceToken) +
                     "\r\nExpect: 100-continue\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n"));
  auto interim = c.read_response();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(c.send(body));
  auto final_answer = c.read_response();
  ASSERT_TRUE(final_answer);
  EXPECT_EQ(final_answer->status, 400) << final_answer->body;  // read and checked: bytes must be at least 1
  EXPECT_NE(final_answer->body.find("bytes"), std::string::npos) << final_answer->body;
}

// A handler that blocks (a compile) holds a handler slot, never an I/O thread: with one slot busy,
// health, metrics and lookups are still answered.
TEST_F(HttpSlowClients, ABlockedHandlerLeavesHealthAndLookupsAnswered) {
  config_.http_threads = 1;
  config_.compile_workers = 2;
  config_.source_policy.max_compile_time = 5s;
  start();
  const int port = server_->port();
  auto bomb = std::async(std::launch::async, [port] {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(120s);
    return c.Post("/v1/kernels", {{"Authorization", std::string("Bearer ") + kAliceToken}},
                  nlohmann::json{{"source", compile_bomb()}}.dump(), "application/json");
  });
  auto compiling = [&] {
    auto m = raw_exchange(port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    return m && m->body.find("kiln_compiles{state=\"running\"} 1") != std::string::npos;
  };
  bool seen = false;
  for (int i = 0; i < 2000 && !(seen = compiling()); ++i) std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(seen) << "the compile never started";
  expect_healthz_answers("the only handler slot was compiling");
  auto list = raw_exchange(port, "GET /v1/kernels HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + std::string(kAliceToken) + "\r\n\r\n");
  ASSERT_TRUE(list);
  EXPECT_EQ(list->status, 200) << list->body;
  EXPECT_EQ(bomb.wait_for(0s), std::future_status::timeout) << "the compile ended before the lookups were made";
  auto r = bomb.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 422) << r->body;
}

}  // namespace
}  // namespace kiln::testing
