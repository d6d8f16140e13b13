// ipc::Channel: framed messages over a connected Unix stream socket, with file descriptors
// passed alongside (SCM_RIGHTS). The one wire format of every kiln child process:
//
//   frame: u32 type | u64 payload length | payload      (little-endian; 12-byte header)
//
// Descriptors attached to a frame travel with its first bytes and arrive, close-on-exec and owned,
// in Frame::fds. Each protocol on top (the compile worker's, the GPU worker's) names its own
// types, says which it accepts and how large a frame may be, and versions itself in its greeting.
//
// One error convention. receive() returns a frame, `timed_out` (the deadline passed) or `closed`
// (the peer closed the connection between two frames: it exited or is exiting). Everything else
// throws ChannelError, a kiln::Error whose message names the peer and what broke: the connection
// closed in the middle of a frame, a length above the limit (refused from the header, never
// allocated), a type the channel does not accept, too many descriptors, a failed system call.
// send() throws ChannelError too, `closed` when the peer is gone. SIGPIPE is never raised
// (MSG_NOSIGNAL); EINTR is retried; the socket's own blocking mode does not matter (all I/O is
// non-blocking, waiting happens in poll with the deadline).
//
// After a frame was cut off (an error, or a deadline that passed in the middle of one) the
// stream is out of step: every later call throws ChannelError (out_of_step) naming the first
// failure. The usual reaction to any failure is to end the peer process.
//
// Thread safety: one thread at a time per Channel (the two ends of a pair are independent).
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "kiln/driver/error.hpp"
#include "kiln/ipc/unique_fd.hpp"

namespace kiln::ipc {

using Clock = std::chrono::steady_clock;
inline constexpr Clock::time_point kForever = Clock::time_point::max();

inline constexpr std::size_t kFrameHeaderBytes = 4 + 8;
// Descriptors one frame may carry (the control buffer is sized for this many).
inline constexpr std::size_t kMaxFdsPerFrame = 16;

struct ChannelOptions {
  // Who is at the other end, as error messages name it: "compile worker '/usr/libexec/...' (pid 12)".
  std::string peer = "the peer";
  // Payloads above this are refused on both sides: the sender throws, the receiver throws on
  // reading the header (before allocating anything).
  std::uint64_t max_frame_bytes = 64u << 20;
  // Frame types outside [first_type, last_type] are refused on receipt.
  std::uint32_t first_type = 0;
  std::uint32_t last_type = UINT32_MAX;
  // receive(): how long to keep polling for a frame before sleeping in the kernel. For a peer
  // that answers within microseconds (a GPU worker's launch reply), when a core can be spared: a
  // sleeping thread's wake-up costs a cross-core interrupt, ~10-20 µs in a VM. 0: sleep at once.
  std::chrono::microseconds spin{0};
};

struct Frame {
  std::uint32_t type = 0;
  std::string payload;
  std::vector<UniqueFd> fds;  // descriptors that came with it, owned by the receiver

  template <class E>
    requires std::is_enum_v<E>
  E type_as() const noexcept {
    return static_cast<E>(type);
  }
};

enum class ReceiveStatus { frame, timed_out, closed };

struct Received {
  ReceiveStatus status = ReceiveStatus::closed;
  Frame frame;  // meaningful when status == frame
  bool has_frame() const noexcept { return status == ReceiveStatus::frame; }
  explicit operator bool() const noexcept { return has_frame(); }
};

class ChannelError : public Error {
 public:
  enum class Failure {
    closed,        // send: the peer closed the connection
    truncated,     // receive: the peer closed the connection in the middle of a frame
    oversized,     // a frame longer than max_frame_bytes (announced or about to be sent)
    bad_type,      // a frame type outside [first_type, last_type]
    too_many_fds,  // more than kMaxFdsPerFrame descriptors with one frame
    timed_out,     // send: the deadline passed before the whole frame was written
    system,        // a system call failed (the message has errno)
    out_of_step,   // the channel is unusable after an earlier failure
    no_socket,     // the Channel holds no socket (default-constructed or moved from)
  };
  ChannelError(Failure failure, Errc code, std::string detail,
               std::source_location where = std::source_location::current())
      : Error(code, std::move(detail), where), failure_(failure) {}
  Failure failure() const noexcept { return failure_; }

 private:
  Failure failure_;
};

class Channel {
 public:
  Channel() = default;
  explicit Channel(UniqueFd socket, ChannelOptions options = {});
  Channel(Channel&&) noexcept = default;
  Channel& operator=(Channel&& other) noexcept;  // self-move leaves it as it was
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // A connected pair (socketpair), both ends close-on-exec: for tests and in-process peers.
  static std::pair<Channel, Channel> pair(const ChannelOptions& first = {}, const ChannelOptions& second = {});

  // Writes the whole frame; `fds` are duplicated into the peer (the caller keeps and closes its
  // own). Throws ChannelError.
  void send(std::uint32_t type, std::string_view payload, std::span<const int> fds = {},
            Clock::time_point deadline = kForever);
  template <class E>
    requires std::is_enum_v<E>
  void send(E type, std::string_view payload, std::span<const int> fds = {}, Clock::time_point deadline = kForever) {
    send(static_cast<std::uint32_t>(type), payload, fds, deadline);
  }

  // The next frame, waiting until `deadline` (kForever: as long as it takes). Throws ChannelError.
  Received receive(Clock::time_point deadline = kForever);
  Received receive_for(std::chrono::milliseconds timeout) { return receive(deadline_after(timeout)); }

  int fd() const noexcept { return socket_.get(); }
  bool valid() const noexcept { return socket_.valid(); }
  explicit operator bool() const noexcept { return valid(); }
  const ChannelOptions& options() const noexcept { return options_; }
  void set_peer(std::string peer) { options_.peer = std::move(peer); }
  // Closes the socket: the peer reads end-of-file (a worker's cue to exit).
  void close() noexcept { socket_.reset(); }

  // now + timeout, saturating (a timeout of hours or more never overflows into the past).
  static Clock::time_point deadline_after(std::chrono::milliseconds timeout) noexcept;

 private:
  [[noreturn]] void fail(ChannelError::Failure failure, Errc code, std::string what);
  void check_usable(const char* operation) const;
  // Reads exactly `size` bytes into `data`; false on timeout. `got` counts bytes read so far.
  // Polls without sleeping until `spin_until`.
  bool read_exact(char* data, std::size_t size, std::size_t& got, Clock::time_point deadline, Clock::time_point spin_until,
                  std::vector<UniqueFd>& fds, const char* part);

  UniqueFd socket_;
  ChannelOptions options_;
  std::string broken_;  // the first failure that left the stream out of step; empty: usable
};

}  // namespace kiln::ipc
