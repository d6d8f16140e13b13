#include "support/raw_http.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace kiln::testing {

namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool equals_ci(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

}  // namespace

std::string RawResponse::header(std::string_view name) const {
  std::size_t at = head.find("\r\n");
  while (at != std::string::npos && at + 2 < head.size()) {
    const std::size_t start = at + 2, end = head.find("\r\n", start);
    const std::string_view line = std::string_view(head).substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (const std::size_t colon = line.find(':'); colon != std::string_view::npos && equals_ci(line.substr(0, colon), name)) {
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      return std::string(value);
    }
    at = end;
  }
  return {};
}

RawConnection::RawConnection(int port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    throw std::runtime_error("connect() to 127.0.0.1:" + std::to_string(port) + " failed");
}

RawConnection::~RawConnection() {
  if (fd_ >= 0) ::close(fd_);
}

bool RawConnection::send(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

int RawConnection::read_some(std::chrono::milliseconds timeout) {
  pollfd p{fd_, POLLIN, 0};
  const int ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (ready <= 0) return -1;
  char buffer[16384];
  const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
  if (n < 0) return errno == ECONNRESET ? 0 : -1;
  pending_.append(buffer, static_cast<std::size_t>(n));
  return static_cast<int>(n);
}

std::optional<RawResponse> RawConnection::read_response(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left = [&] {
    return std::max(std::chrono::milliseconds(0),
                    std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
  };
  std::size_t end_of_head;
  while ((end_of_head = pending_.find("\r\n\r\n")) == std::string::npos)
    if (read_some(left()) <= 0) return std::nullopt;
  RawResponse r;
  r.head = pending_.substr(0, end_of_head);
  if (r.head.size() < 12 || r.head.compare(0, 5, "HTTP/") != 0) return std::nullopt;
  r.status = std::stoi(r.head.substr(9, 3));
  const std::string length = r.header("Content-Length");
  const std::size_t body_bytes = length.empty() ? 0 : std::stoull(length);
  while (pending_.size() < end_of_head + 4 + body_bytes)
    if (read_some(left()) <= 0) return std::nullopt;
  r.body = pending_.substr(end_of_head + 4, body_bytes);
  pending_.erase(0, end_of_head + 4 + body_bytes);
  return r;
}

bool RawConnection::closed_by_server(std::chrono::milliseconds timeout) {
  if (!pending_.empty()) return false;
  return read_some(timeout) == 0;
}

std::optional<RawResponse> raw_exchange(int port, std::string_view request) {
  RawConnection c(port);
  if (!c.send(request)) return std::nullopt;
  return c.read_response();
}

bool is_utf8_json(const std::string& body) {
  try {
    const nlohmann::json parsed = nlohmann::json::parse(body);  // rejects invalid UTF-8 in strings
    (void)parsed.dump();                                        // strict: throws on invalid UTF-8
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace kiln::testing
