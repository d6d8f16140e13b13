#include "kiln/ipc/channel.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

#include "ipc/detail/errno_text.hpp"
#include "kiln/driver/cpu_relax.hpp"
#include "kiln/ipc/socket_pair.hpp"

namespace kiln::ipc {
namespace {

static_assert(std::endian::native == std::endian::little, "the frame header is little-endian");
using Failure = ChannelError::Failure;

// Waits until `fd` is ready for `events` or the deadline passes (false): polling without sleeping
// until `spin_until`, then asleep in poll().
bool wait_for(int fd, short events, Clock::time_point deadline, Clock::time_point spin_until = {}) {
  for (Clock::time_point now; (now = Clock::now()) < spin_until;) {
    if (now >= deadline) return false;
    pollfd p{fd, events, 0};
    if (::poll(&p, 1, 0) != 0) return true;  // ready, hung up or in error: the next call says which
    cpu_relax();
  }
  for (;;) {
    int timeout_ms = -1;
    if (deadline != kForever) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      timeout_ms = static_cast<int>(std::min<long long>(left, 1 << 30));
    }
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, timeout_ms);
    if (n > 0) return true;  // ready, or hung up / in error: the next call says which
    if (n < 0 && errno != EINTR) return true;
  }
}

std::string bytes(std::uint64_t n) { return std::to_string(n) + (n == 1 ? " byte" : " bytes"); }

}  // namespace

Channel::Channel(UniqueFd socket, ChannelOptions options) : socket_(std::move(socket)), options_(std::move(options)) {}

Channel& Channel::operator=(Channel&& other) noexcept {
  if (this != &other) {
    socket_ = std::move(other.socket_);
    options_ = std::move(other.options_);
    broken_ = std::exchange(other.broken_, {});
  }
  return *this;
}

std::pair<Channel, Channel> Channel::pair(const ChannelOptions& first, const ChannelOptions& second) {
  SocketPair p = SocketPair::create();
  return {Channel(std::move(p.first), first), Channel(std::move(p.second), second)};
}

Clock::time_point Channel::deadline_after(std::chrono::milliseconds timeout) noexcept {
  const auto now = Clock::now();
  if (timeout <= std::chrono::milliseconds::zero()) return now;
  if (timeout >= std::chrono::duration_cast<std::chrono::milliseconds>(kForever - now)) return kForever;
  return now + timeout;
}

void Channel::fail(Failure failure, Errc code, std::string what) {
  std::string detail = "ipc channel to " + options_.peer + ": " + what;
  if (failure != Failure::closed && failure != Failure::no_socket && broken_.empty()) broken_ = what;
  throw ChannelError(failure, code, std::move(detail));
}

void Channel::check_usable(const char* operation) const {
  if (!socket_)
    throw ChannelError(Failure::no_socket, Errc::invalid_handle,
                       std::string("ipc channel: ") + operation + " on a Channel without a socket (moved from or closed)");
  if (!broken_.empty())
    throw ChannelError(Failure::out_of_step, Errc::internal,
                       "ipc channel to " + options_.peer + ": " + operation +
                           " refused: the stream is out of step since an earlier failure (" + broken_ + ")");
}

void Channel::send(std::uint32_t type, std::string_view payload, std::span<const int> fds, Clock::time_point deadline) {
  check_usable("send");
  if (payload.size() > options_.max_frame_bytes)
    throw ChannelError(Failure::oversized, Errc::invalid_argument,
                       "ipc channel to " + options_.peer + ": a frame of " + bytes(payload.size()) + " (type " +
                           std::to_string(type) + ") is above the limit of " + bytes(options_.max_frame_bytes) +
                           "; nothing was sent");
  if (fds.size() > kMaxFdsPerFrame)
    throw ChannelError(Failure::too_many_fds, Errc::invalid_argument,
                       "ipc channel to " + options_.peer + ": " + std::to_string(fds.size()) +
                           " descriptors with one frame, the limit is " + std::to_string(kMaxFdsPerFrame));
  char header[kFrameHeaderBytes];
  const std::uint64_t length = payload.size();
  std::memcpy(header, &type, 4);
  std::memcpy(header + 4, &length, 8);
  iovec parts[2] = {{header, sizeof header}, {const_cast<char*>(payload.data()), payload.size()}};
  msghdr msg{};
  msg.msg_iov = parts;
  msg.msg_iovlen = payload.empty() ? 1 : 2;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerFrame)] = {};
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  const std::size_t total = sizeof header + payload.size();
  std::size_t sent = 0;
  while (sent < total) {
    const ssize_t n = ::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      const std::string where = "frame type " + std::to_string(type) + ", " + bytes(sent) + " of " + bytes(total) + " sent";
      if (err == EAGAIN || err == EWOULDBLOCK) {
        if (wait_for(socket_.get(), POLLOUT, deadline)) continue;
        fail(Failure::timed_out, Errc::timeout, "the deadline passed while sending (" + where + ")");
      }
      if (err == EPIPE || err == ECONNRESET)
        fail(sent == 0 ? Failure::closed : Failure::truncated, Errc::internal,
             "the peer closed the connection (" + where + ": " + detail::errno_text(err) + ")");
      fail(Failure::system, Errc::internal, "sendmsg failed (" + where + "): " + detail::errno_text(err));
    }
    sent += static_cast<std::size_t>(n);
    // The descriptors went with the first bytes; the rest is plain data.
    msg.msg_control = nullptr;
    msg.msg_controllen = 0;
    auto skip = static_cast<std::size_t>(n);
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

bool Channel::read_exact(char* data, std::size_t size, std::size_t& got, Clock::time_point deadline,
                         Clock::time_point spin_until, std::vector<UniqueFd>& fds, const char* part) {
  while (got < size) {
    iovec io{data + got, size - got};
    msghdr msg{};
    msg.msg_iov = &io;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerFrame)];
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(socket_.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        if (!wait_for(socket_.get(), POLLIN, deadline, spin_until)) return false;
        continue;
      }
      if (err == ECONNRESET) return true;  // the peer is gone: the caller sees got < size
      fail(Failure::system, Errc::internal,
           std::string("recvmsg failed while reading the ") + part + ": " + detail::errno_text(err));
    }
    // Descriptors first, so that they are owned (and closed on any error) before anything else.
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        fds.emplace_back(fd);
      }
    }
    if (msg.msg_flags & MSG_CTRUNC || fds.size() > kMaxFdsPerFrame)
      fail(Failure::too_many_fds, Errc::internal,
           "the peer sent more descriptors with one frame than the limit of " + std::to_string(kMaxFdsPerFrame) +
               " (the kernel dropped the rest)");
    if (n == 0) return true;  // end of file: the caller sees got < size
    got += static_cast<std::size_t>(n);
  }
  return true;
}

Received Channel::receive(Clock::time_point deadline) {
  check_usable("receive");
  Received r;
  char header[kFrameHeaderBytes];
  std::size_t got = 0;
  const Clock::time_point spin_until = options_.spin.count() > 0 ? Clock::now() + options_.spin : Clock::time_point{};
  if (!read_exact(header, sizeof header, got, deadline, spin_until, r.frame.fds, "frame header")) {
    if (got == 0 && r.frame.fds.empty()) {
      r.status = ReceiveStatus::timed_out;
      return r;
    }
    broken_ = "the deadline passed in the middle of a frame header (" + bytes(got) + " of " +
              bytes(kFrameHeaderBytes) + " read)";
    r.frame = {};
    r.status = ReceiveStatus::timed_out;
    return r;
  }
  if (got < sizeof header) {
    if (got == 0) {
      r.status = ReceiveStatus::closed;  // between two frames: the peer exited or is exiting
      return r;
    }
    fail(Failure::truncated, Errc::internal,
         "the peer closed the connection in the middle of a frame header (" + bytes(got) + " of " +
             bytes(kFrameHeaderBytes) + " read)");
  }
  std::uint64_t length;
  std::memcpy(&r.frame.type, header, 4);
  std::memcpy(&length, header + 4, 8);
  const std::uint32_t type = r.frame.type;
  if (type < options_.first_type || type > options_.last_type)
    fail(Failure::bad_type, Errc::internal,
         "the peer sent frame type " + std::to_string(type) + ", which this channel does not accept (" +
             std::to_string(options_.first_type) + "-" + std::to_string(options_.last_type) +
             "): not the expected protocol, or garbage");
  if (length > options_.max_frame_bytes)
    fail(Failure::oversized, Errc::internal,
         "the peer announced a frame of " + bytes(length) + " (type " + std::to_string(type) +
             "), above this channel's limit of " + bytes(options_.max_frame_bytes) + "; refused unread");
  r.frame.payload.resize(static_cast<std::size_t>(length));
  got = 0;
  if (!read_exact(r.frame.payload.data(), r.frame.payload.size(), got, deadline, spin_until, r.frame.fds, "frame payload")) {
    broken_ = "the deadline passed in the middle of a frame of type " + std::to_string(type) + " (" + bytes(got) +
              " of " + bytes(length) + " read)";
    r.frame = {};
    r.status = ReceiveStatus::timed_out;
    return r;
  }
  if (got < length)
    fail(Failure::truncated, Errc::internal,
         "the peer closed the connection in the middle of a frame of type " + std::to_string(type) + " (" +
             bytes(got) + " of " + bytes(length) + " read)");
  r.status = ReceiveStatus::frame;
  return r;
}

}  // namespace kiln::ipc
