// The supervisor <-> worker protocol: small binary frames over a Unix stream socket, with file
// descriptors (buffers exported by the supervisor) passed alongside with SCM_RIGHTS.
//
// Frame: u32 payload length (little-endian) | u8 type | payload. A payload is a sequence of fixed
// width integers and length-prefixed byte strings, written by FrameWriter and read by FrameReader,
// which refuses to read past the end.
//
// Thread safety: a Channel may be used by one sender and one receiver thread at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::service {

enum class FrameType : std::uint8_t {
  ready = 1,          // worker -> supervisor: device opened; payload: device name
  import_buffer = 2,  // supervisor -> worker: id, size; one fd attached
  release_buffer = 3, // supervisor -> worker: id
  launch = 4,         // supervisor -> worker: a launch (see worker.cpp for the layout)
  launch_done = 5,    // worker -> supervisor: its outcome
  shutdown = 6,       // supervisor -> worker: exit now
  error = 7,          // worker -> supervisor: a request it could not serve (not a launch)
};

struct Frame {
  FrameType type{};
  std::string payload;
  int fd = -1;  // a descriptor that came with the frame (owned by the receiver), or -1
};

class FrameWriter {
 public:
  FrameWriter& u8(std::uint8_t v);
  FrameWriter& u32(std::uint32_t v);
  FrameWriter& u64(std::uint64_t v);
  FrameWriter& f64(double v);
  FrameWriter& bytes(std::string_view v);
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class FrameReader {
 public:
  explicit FrameReader(std::string_view payload) : in_(payload) {}
  std::uint8_t u8();
  std::uint32_t u32();
  std::uint64_t u64();
  double f64();
  std::string bytes();
  bool done() const noexcept { return pos_ == in_.size(); }

 private:
  void need(std::size_t n) const;
  std::string_view in_;
  std::size_t pos_ = 0;
};

// One end of a connected Unix stream socket. Owns the descriptor.
class Channel {
 public:
  static constexpr std::size_t kMaxPayload = 256u << 20;

  Channel() = default;
  explicit Channel(int fd) : fd_(fd) {}
  ~Channel();
  Channel(Channel&& o) noexcept : fd_(o.release()) {}
  Channel& operator=(Channel&& o) noexcept;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // A connected pair (socketpair), for a supervisor and the worker it starts.
  static std::pair<Channel, Channel> pair();

  // Throws kiln::Error when the peer is gone or the frame is too large. `fd` is sent, not closed.
  void send(FrameType type, std::string_view payload, int fd = -1);
  // nullopt on timeout; throws kiln::Error on end of stream (the peer exited) or a bad frame.
  std::optional<Frame> receive(std::chrono::milliseconds timeout);
  Frame receive();  // waits as long as it takes

  int fd() const noexcept { return fd_; }
  int release() noexcept;
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  bool read_exact(char* data, std::size_t n, int* fd_out);
  int fd_ = -1;
};

}  // namespace kiln::service
