// The supervisor <-> GPU worker protocol on ipc::Channel frames: the frame types, the channel's
// limits, and the payload encoding. Buffers exported by the supervisor travel as descriptors
// attached to their import frame (SCM_RIGHTS).
//
// A payload is a sequence of fixed-width little-endian integers and u32-length-prefixed byte
// strings, written by PayloadWriter and read by PayloadReader, which throws kiln::Error rather
// than read past the end.
//
// Thread safety: PayloadWriter and PayloadReader are plain values used by one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kiln/ipc/channel.hpp"

namespace kiln::service {

enum class GpuWorkerFrame : std::uint32_t {
  ready = 1,          // worker -> supervisor: device opened; payload: device name
  import_buffer = 2,  // supervisor -> worker: id, size; one descriptor attached
  release_buffer = 3, // supervisor -> worker: id
  launch = 4,         // supervisor -> worker: a launch (see gpu_worker.cpp for the layout)
  launch_done = 5,    // worker -> supervisor: its outcome
  shutdown = 6,       // supervisor -> worker: exit now
  error = 7,          // worker -> supervisor: a request it could not serve (not a launch)
};

// A launch frame carries its image (once per key and worker) and its arguments.
inline constexpr std::uint64_t kMaxGpuWorkerFrameBytes = 256u << 20;

// The limits both ends use; `peer` names the other end in errors.
ipc::ChannelOptions gpu_worker_channel(std::string peer);

class PayloadWriter {
 public:
  PayloadWriter& u8(std::uint8_t v);
  PayloadWriter& u32(std::uint32_t v);
  PayloadWriter& u64(std::uint64_t v);
  PayloadWriter& f64(double v);
  PayloadWriter& bytes(std::string_view v);
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class PayloadReader {
 public:
  explicit PayloadReader(std::string_view payload) : in_(payload) {}
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

}  // namespace kiln::service
