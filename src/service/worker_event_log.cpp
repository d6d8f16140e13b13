#include "kiln/service/worker_event_log.hpp"

namespace kiln::service {

LogLevel level_of(WorkerEvent::Kind kind) noexcept {
  switch (kind) {
    case WorkerEvent::Kind::worker_started:
    case WorkerEvent::Kind::circuit_closed: return LogLevel::info;
    case WorkerEvent::Kind::worker_exited:
    case WorkerEvent::Kind::watchdog_kill: return LogLevel::warn;
    case WorkerEvent::Kind::worker_start_failed:
    case WorkerEvent::Kind::sticky_fault:
    case WorkerEvent::Kind::circuit_open: return LogLevel::error;
  }
  return LogLevel::warn;
}

std::function<void(const WorkerEvent&)> log_worker_events(Log log) {
  return [log = std::move(log)](const WorkerEvent& e) {
    LogFields fields{{"device", e.device}};
    if (e.pid >= 0) fields.emplace_back("pid", e.pid);
    if (e.job_id != 0) fields.emplace_back("job", e.job_id);
    if (!e.request_id.empty()) fields.emplace_back("request_id", e.request_id);
    if (!e.error_name.empty()) fields.emplace_back("error", e.error_name);
    if (e.kind == WorkerEvent::Kind::sticky_fault || e.kind == WorkerEvent::Kind::watchdog_kill)
      fields.emplace_back("suspect_buffers", std::vector<std::uint64_t>(e.suspect_buffers.begin(), e.suspect_buffers.end()));
    log.event(level_of(e.kind), to_string(e.kind), e.message, fields);
  };
}

}  // namespace kiln::service
