// The worker process of kilnd: one per GPU, started by the supervisor with fork+exec (CUDA does not
// survive a bare fork). It maps the supervisor's buffers, loads modules, launches, and reports. A
// sticky error ends it (its context is unusable); the supervisor starts another.
#pragma once

#include <cstdint>
#include <string>

#include "kiln/service/gpu_backend.hpp"
#include "kiln/service/worker_protocol.hpp"

namespace kiln::service {

// Serves the supervisor on `channel` until told to stop or the supervisor goes away. Returns the
// process exit code: 0 on shutdown, 3 after a sticky error.
int run_worker(Channel channel, int device);

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
