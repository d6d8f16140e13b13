// The GPU worker: kilnd's process per GPU, started by the supervisor (WorkerPool) with ipc::spawn
// (fork+exec semantics: CUDA does not survive a bare fork). It maps the supervisor's buffers,
// loads the images it is sent (once per key) as modules, launches, and reports over an
// ipc::Channel. A sticky error ends it (its context is unusable); the supervisor starts another.
//
// With one lane (gpu_mode isolation) the worker runs one launch at a time on its reading thread.
// With several (concurrent) each lane is a thread with its own non-blocking stream; the reading
// thread resolves a launch's module and buffers and hands it to the next free lane, so a buffer
// released or an image forgotten while a launch uses it stays mapped or loaded until that launch
// ends. After a sticky error only the first lane to see it reports (its outcome names the error);
// the worker reports nothing more and exits: the supervisor fails the other launches in flight.
#pragma once

#include <cstdint>
#include <string>

#include "kiln/service/gpu_backend.hpp"
#include "kiln/ipc/channel.hpp"
#include "kiln/service/gpu_worker_protocol.hpp"

namespace kiln::service {

// Serves the supervisor on `channel` (made with gpu_worker_channel()) until told to stop or the
// supervisor goes away, running up to `lanes` launches at once (1: one at a time). Returns the
// process exit code: 0 on shutdown or when the supervisor closed the connection, 1 when the device
// could not be opened (after reporting why), 2 when the stream broke (a frame cut off or
// refused), 3 after a sticky error.
int serve_gpu_worker(ipc::Channel channel, int device, int lanes = 1);

// Launch and outcome frames, shared by the supervisor and the worker. A launch frame names its
// image by key; decode_launch leaves LaunchSpec::image empty.
std::string encode_launch(const LaunchSpec& spec);
LaunchSpec decode_launch(std::string_view payload);

// load_image and forget_image frames.
struct ImageFrame {
  std::string key;
  std::string image;  // empty in a forget_image frame
};
std::string encode_load_image(std::string_view key, std::string_view image);
ImageFrame decode_load_image(std::string_view payload);
std::string encode_forget_image(std::string_view key);
std::string decode_forget_image(std::string_view payload);

struct LaunchOutcome {
  std::uint64_t job_id = 0;
  LaunchStatus status = LaunchStatus::completed;
  std::string error_name;
  std::string message;
  bool sticky = false;
  double elapsed_ms = 0;
};
std::string encode_outcome(const LaunchOutcome& o);
LaunchOutcome decode_outcome(std::string_view payload);

}  // namespace kiln::service
