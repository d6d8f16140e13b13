// The GPU worker: kilnd's process per GPU, started by the supervisor (WorkerPool) with ipc::spawn
// (fork+exec semantics: CUDA does not survive a bare fork). It maps the supervisor's buffers,
// loads modules, launches, and reports over an ipc::Channel. A sticky error ends it (its context
// is unusable); the supervisor starts another.
#pragma once

#include <cstdint>
#include <string>

#include "kiln/service/gpu_backend.hpp"
#include "kiln/ipc/channel.hpp"
#include "kiln/service/gpu_worker_protocol.hpp"

namespace kiln::service {

// Serves the supervisor on `channel` (made with gpu_worker_channel()) until told to stop or the
// supervisor goes away. Returns the process exit code: 0 on shutdown or when the supervisor closed
// the connection, 1 when the device could not be opened (after reporting why), 2 when the stream
// broke (a frame cut off or refused), 3 after a sticky error.
int serve_gpu_worker(ipc::Channel channel, int device);

// Launch and outcome frames, shared by the supervisor and the worker.
std::string encode_launch(const LaunchSpec& spec);
LaunchSpec decode_launch(std::string_view payload);

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
