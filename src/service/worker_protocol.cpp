#include "kiln/service/worker_protocol.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "kiln/driver/error.hpp"

namespace kiln::service {

namespace {

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // the hosts are little-endian x86-64 and arm64
  out.append(b, sizeof(T));
}

}  // namespace

FrameWriter& FrameWriter::u8(std::uint8_t v) { return put(out_, v), *this; }
FrameWriter& FrameWriter::u32(std::uint32_t v) { return put(out_, v), *this; }
FrameWriter& FrameWriter::u64(std::uint64_t v) { return put(out_, v), *this; }
FrameWriter& FrameWriter::f64(double v) { return put(out_, v), *this; }
FrameWriter& FrameWriter::bytes(std::string_view v) {
  u32(static_cast<std::uint32_t>(v.size()));
  out_.append(v);
  return *this;
}

void FrameReader::need(std::size_t n) const {
  if (in_.size() - pos_ < n)
    throw Error(Errc::invalid_argument, "worker protocol: frame ends " + std::to_string(n - (in_.size() - pos_)) +
                                            " bytes early");
}

#define KILN_READ(T)        \
  need(sizeof(T));          \
  T v;                      \
  std::memcpy(&v, in_.data() + pos_, sizeof(T)); \
  pos_ += sizeof(T);        \
  return v

std::uint8_t FrameReader::u8() { KILN_READ(std::uint8_t); }
std::uint32_t FrameReader::u32() { KILN_READ(std::uint32_t); }
std::uint64_t FrameReader::u64() { KILN_READ(std::uint64_t); }
double FrameReader::f64() { KILN_READ(double); }
#undef KILN_READ

std::string FrameReader::bytes() {
  const std::uint32_t n = u32();
  need(n);
  std::string v(in_.substr(pos_, n));
  pos_ += n;
  return v;
}

Channel::~Channel() {
  if (fd_ >= 0) ::close(fd_);
}

Channel& Channel::operator=(Channel&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

int Channel::release() noexcept {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

std::pair<Channel, Channel> Channel::pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    throw Error(Errc::internal, std::string("socketpair failed: ") + std::strerror(errno));
  return {Channel(fds[0]), Channel(fds[1])};
}

void Channel::send(FrameType type, std::string_view payload, int fd) {
  if (payload.size() > kMaxPayload)
    throw Error(Errc::invalid_argument, "worker protocol: frame of " + std::to_string(payload.size()) +
                                            " bytes is larger than the limit");
  char header[5];
  const auto length = static_cast<std::uint32_t>(payload.size());
  std::memcpy(header, &length, 4);
  header[4] = static_cast<char>(type);
  iovec parts[2] = {{header, sizeof header}, {const_cast<char*>(payload.data()), payload.size()}};
  msghdr msg{};
  msg.msg_iov = parts;
  msg.msg_iovlen = 2;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  std::size_t total = sizeof header + payload.size(), sent = 0;
  while (sent < total) {
    ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(Errc::internal, std::string("worker protocol: send failed: ") + std::strerror(errno));
    }
    sent += static_cast<std::size_t>(n);
    // The descriptor went with the first bytes; the rest is plain data.
    msg.msg_control = nullptr;
    msg.msg_controllen = 0;
    std::size_t skip = static_cast<std::size_t>(n);
    while (msg.msg_iovlen > 0 && skip >= msg.msg_iov[0].iov_len) {
      skip -= msg.msg_iov[0].iov_len;
      ++msg.msg_iov;
      --msg.msg_iovlen;
    }
    if (msg.msg_iovlen > 0) {
      msg.msg_iov[0].iov_base = static_cast<char*>(msg.msg_iov[0].iov_base) + skip;
      msg.msg_iov[0].iov_len -= skip;
    }
  }
}

bool Channel::read_exact(char* data, std::size_t n, int* fd_out) {
  std::size_t got = 0;
  while (got < n) {
    iovec part{data + got, n - got};
    msghdr msg{};
    msg.msg_iov = &part;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (fd_out) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
    }
    ssize_t r = ::recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw Error(Errc::internal, std::string("worker protocol: receive failed: ") + std::strerror(errno));
    }
    if (r == 0) return false;
    if (fd_out)
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) std::memcpy(fd_out, CMSG_DATA(c), sizeof(int));
    got += static_cast<std::size_t>(r);
  }
  return true;
}

std::optional<Frame> Channel::receive(std::chrono::milliseconds timeout) {
  pollfd p{fd_, POLLIN, 0};
  const int ms = timeout.count() > 0x7fffffff ? -1 : static_cast<int>(timeout.count());
  int r;
  do r = ::poll(&p, 1, ms);
  while (r < 0 && errno == EINTR);
  if (r == 0) return std::nullopt;
  return receive();
}

Frame Channel::receive() {
  char header[5];
  Frame f;
  if (!read_exact(header, sizeof header, &f.fd))
    throw Error(Errc::internal, "worker protocol: the peer closed the connection");
  std::uint32_t length;
  std::memcpy(&length, header, 4);
  if (length > kMaxPayload) {
    if (f.fd >= 0) ::close(f.fd);
    throw Error(Errc::invalid_argument, "worker protocol: announced frame of " + std::to_string(length) +
                                            " bytes is larger than the limit");
  }
  f.type = static_cast<FrameType>(header[4]);
  f.payload.resize(length);
  if (length && !read_exact(f.payload.data(), length, nullptr)) {
    if (f.fd >= 0) ::close(f.fd);
    throw Error(Errc::internal, "worker protocol: the peer closed the connection in the middle of a frame");
  }
  return f;
}

}  // namespace kiln::service
