// How a GPU worker runs launches: one at a time (isolation) or several at once on separate streams
// (concurrent). A per-service choice (ServiceConfig::gpu_mode, WorkerPoolOptions::mode).
//
//   isolation   one launch at a time per GPU worker: a sticky fault loses only the launch that
//               caused it (the default).
//   concurrent  up to streams_per_gpu launches at once, one non-blocking stream each: a long kernel
//               does not hold up a short one, but a sticky fault (or a deadline, or a crash) ends
//               every launch in flight on that worker; those are reported as aborted.
//
// Thread safety: plain values and pure functions.
#pragma once

#include <optional>
#include <string_view>

namespace kiln::service {

enum class GpuMode { isolation, concurrent };

std::string_view to_string(GpuMode mode) noexcept;
// "isolation" or "concurrent"; nullopt for anything else.
std::optional<GpuMode> parse_gpu_mode(std::string_view text) noexcept;

}  // namespace kiln::service
