// The supervisor <-> GPU worker protocol on ipc::Channel frames: the frame types, the channel's
// limits, and the payload encoding. Buffers exported by the supervisor travel as descriptors
// attached to their import frame (SCM_RIGHTS). Kernel images travel once per worker and image key
// (load_image), like buffers: a launch names its image by key only.
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
  launch = 4,         // supervisor -> worker: a launch by image key (see gpu_worker.cpp for the layout)
  launch_done = 5,    // worker -> supervisor: its outcome
  shutdown = 6,       // supervisor -> worker: exit now
  error = 7,          // worker -> supervisor: a request it could not serve (not a launch)
  load_image = 8,     // supervisor -> worker: image key, image bytes; not answered (a launch reports a bad image)
  forget_image = 9,   // supervisor -> worker: image key; unload its module once no launch uses it
};

// The error_name of a launch_done whose image key the worker does not hold: the supervisor sends
// the image again and repeats the launch (it should not happen: the supervisor tracks the keys).
inline constexpr const char* kImageNotLoaded = "KILN_ERROR_IMAGE_NOT_LOADED";

// A load_image frame carries one image (a CUBIN of a few MiB at most in practice).
inline constexpr std::uint64_t kMaxGpuWorkerFrameBytes = 256u << 20;

// The limits both ends use; `peer` names the other end in errors; `spin`: how long a receive polls
// before sleeping (spin.hpp).
ipc::ChannelOptions gpu_worker_channel(std::string peer, std::chrono::microseconds spin = {});

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
