// What the service benchmarks share: a minimal HTTP/1.1 client (plain sockets, no parsing beyond
// the status line and Content-Length), the machine's loopback floor, and kilnd's Server-Timing.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "timing.hpp"

namespace kiln::bench {

// The leanest HTTP/1.1 client: one kept-alive connection, Nagle off, each request written with
// one send() (as curl and Python's http.client do for a small body; cpp-httplib's client writes
// headers and body separately, which costs the server a second wake-up). Reconnects when the
// server closes the connection. Returns the status, or -1.
class OneWriteClient {
 public:
  explicit OneWriteClient(int port) : port_(port) {}
  ~OneWriteClient() { close_socket(); }
  int post(const std::string& path, const std::string& authorization, const std::string& body) {
    return exchange("POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " + authorization +
                    "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  }
  int get(const std::string& path) { return exchange("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); }
  int get(const std::string& path, const std::string& authorization) {
    return exchange("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " + authorization + "\r\n\r\n");
  }
  // The status line and headers of the last answer.
  const std::string& last_head() const noexcept { return head_; }

 private:
  int exchange(const std::string& request) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (fd_ < 0 && !open_socket()) return -1;
      if (::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
        const int status = read_response();
        if (status > 0) return status;
      }
      close_socket();  // closed by the server (keep-alive limit): once more on a new connection
    }
    return -1;
  }

  bool open_socket() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port_));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) return true;
    close_socket();
    return false;
  }
  void close_socket() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int read_response() {
    std::string in;
    char buffer[8192];
    for (;;) {
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) return -1;
      in.append(buffer, static_cast<std::size_t>(n));
      const auto end = in.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      const auto length_at = in.find("Content-Length: ");
      const std::size_t length = length_at < end ? std::stoul(in.substr(length_at + 16)) : 0;
      if (in.size() < end + 4 + length) continue;
      head_.assign(in, 0, end);
      if (in.find("Connection: close") < end) close_socket();
      return std::stoi(in.substr(9, 3));
    }
  }
  int port_;
  int fd_ = -1;
  std::string head_;
};

// This machine's loopback floor: round trips (µs) of a one-write client against a thread that
// answers every request on a blocking socket with fixed bytes (no parsing, no routing). Empty when
// a round trip fails.
inline std::vector<double> loopback_floor(int reps) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address);
  ::listen(listener, 1);
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  std::thread echo([listener] {
    const int c = ::accept(listener, nullptr, nullptr);
    int one = 1;
    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    static constexpr std::string_view kAnswer =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}";
    std::string in;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      in.append(buf, static_cast<std::size_t>(n));
      for (std::size_t end; (end = in.find("\r\n\r\n")) != std::string::npos;) {
        in.erase(0, end + 4);
        ::send(c, kAnswer.data(), kAnswer.size(), MSG_NOSIGNAL);
      }
    }
    ::close(c);
  });
  std::vector<double> samples;
  {
    OneWriteClient client(ntohs(address.sin_port));
    for (int i = 0; i < reps; ++i) {
      const auto t = std::chrono::steady_clock::now();
      if (client.get("/healthz") != 200) {
        samples.clear();
        break;
      }
      samples.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t).count());
    }
  }
  echo.join();
  ::close(listener);
  return samples;
}

// Registers `source` (which defines `extern "C" __global__ void empty(int*)`) and a 4-byte buffer
// with the kilnd behind `client`, and returns the body of a waiting launch of `empty` on that
// buffer; empty when a registration fails (then `why` says which answer, when given).
inline std::string empty_launch_request(httplib::Client& client, const httplib::Headers& auth, const char* source,
                                        std::string* why = nullptr) {
  using nlohmann::json;
  auto k = client.Post("/v1/kernels", auth, json{{"name", "bench.cu"}, {"source", source}}.dump(), "application/json");
  auto b = client.Post("/v1/buffers", auth, json{{"device", 0}, {"bytes", 4}}.dump(), "application/json");
  if (!k || k->status != 201 || !b || b->status != 201) {
    if (why) *why = (k ? k->body : "no answer to the kernel") + " " + (b ? b->body : "no answer to the buffer");
    return {};
  }
  return json{{"kernel", json::parse(k->body)["id"]}, {"function", "empty"}, {"wait", true},
              {"arguments", {{{"buffer", json::parse(b->body)["id"]}}}}}
      .dump();
}

// A launch answer's Server-Timing (docs/SERVICE.md), in microseconds.
struct ServerTiming {
  double check = 0, run = 0, handler = 0, handoff = 0, gpu = 0;
};

// Parses the Server-Timing that `text` (an answer's head, or the header's value) holds.
inline std::optional<ServerTiming> server_timing(std::string_view text) {
  const auto at = text.find("check;dur=");
  if (at == std::string_view::npos) return std::nullopt;
  const std::string value(text.substr(at, text.find('\r', at) - at));
  ServerTiming t;
  if (std::sscanf(value.c_str(), "check;dur=%lf, run;dur=%lf, total;dur=%lf, handoff;dur=%lf, gpu;dur=%lf", &t.check, &t.run,
                  &t.handler, &t.handoff, &t.gpu) != 5)
    return std::nullopt;
  for (double* d : {&t.check, &t.run, &t.handler, &t.handoff, &t.gpu}) *d *= 1e3;
  return t;
}

// One line: the p50 of each part of the Server-Timings.
inline void print_server_timing(const std::vector<ServerTiming>& timings) {
  auto p50 = [&](double ServerTiming::*part) {
    std::vector<double> v;
    for (const ServerTiming& t : timings) v.push_back(t.*part);
    return quantile(v, .5);
  };
  std::printf("inside kilnd (Server-Timing, p50): hand-off to the handler %.1f us, checking the request %.1f us, "
              "submission to answer %.1f us (of which the GPU worker %.1f us), handler %.1f us; the rest of the round "
              "trip is the network, HTTP and JSON\n",
              p50(&ServerTiming::handoff), p50(&ServerTiming::check), p50(&ServerTiming::run), p50(&ServerTiming::gpu),
              p50(&ServerTiming::handler));
}

}  // namespace kiln::bench
