// The GPU supervisor's events (WorkerPool, part of the kiln library, which logs nothing itself)
// written to kilnd's log: install the result as WorkerPoolOptions::on_event.
//
// Levels: worker_started and circuit_closed info; worker_exited and watchdog_kill warn;
// worker_start_failed, sticky_fault and circuit_open error. A launch's event carries its job, request id and suspect
// buffers (ids only).
//
// Thread safety: the handler may be called from any thread at once.
#pragma once

#include <functional>

#include "kiln/service/log.hpp"
#include "kiln/service/worker_pool.hpp"

namespace kiln::service {

std::function<void(const WorkerEvent&)> log_worker_events(Log log);

// The level log_worker_events writes an event of this kind at.
LogLevel level_of(WorkerEvent::Kind kind) noexcept;

}  // namespace kiln::service
