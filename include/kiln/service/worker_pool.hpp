// The supervisor's side of kilnd's isolation: one worker process per GPU, buffers that survive a
// worker's death, a watchdog for deadlines, and a circuit breaker for a GPU that keeps failing.
//
//   - Buffers are made here with cuMemCreate (POSIX fd handles) and mapped here too, so uploads and
//     downloads never touch a worker. A worker imports a buffer (descriptor over SCM_RIGHTS) the
//     first time a launch uses it.
//   - A sticky error kills only the worker's context: it reports the failed launch, exits, and a
//     new worker is started; other buffers are untouched, and those the failed launch could write
//     are named as suspect in its result.
//   - Kernel images go to a worker once: the supervisor remembers, per worker incarnation, which
//     image keys it holds (detail/loaded_images.hpp), sends an image (load_image) only before its
//     first launch there, and launch frames carry the key. A worker holds at most
//     max_images_per_worker images and max_image_bytes_per_worker bytes of them (default 256 and
//     512 MiB): the least recently used beyond that are unloaded (forget_image). A new worker
//     starts with none; a worker that does not know a key is sent the image again.
//   - A launch past its deadline is stopped the only reliable way, by ending its worker.
//   - mode (gpu_mode.hpp): isolation runs one launch at a time per GPU (the slot's lock is held for
//     the whole launch). concurrent runs up to streams_per_gpu at once in the worker; the lock is
//     held only to send, a reader thread per worker matches replies to launches by job id
//     (detail/inflight_launches.hpp), and when the worker is lost (a sticky error, a deadline, a
//     crash) every other launch in flight on it fails as aborted_by_neighbour (or worker_lost)
//     with its suspect buffers.
//   - `circuit_failures` worker deaths within `circuit_window` open the circuit for `cooldown`:
//     launches on that GPU are refused (device_unavailable) and devices() says why.
//
// Thread safety: every member may be called from any thread; in isolation mode launches on one
// GPU take turns.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/service/gpu_backend.hpp"
#include "kiln/service/gpu_mode.hpp"
#include "kiln/service/spin.hpp"

namespace kiln::service {

// What the supervisor reports as it happens, for kilnd's log: the kiln library logs nothing
// itself, kilnd installs WorkerPoolOptions::on_event (kiln_service's log_worker_events).
struct WorkerEvent {
  enum class Kind : std::uint8_t {
    worker_started,  // pid: the new worker
    worker_start_failed,  // message: why no worker could be started (the GPU is not scheduled meanwhile)
    worker_exited,   // message: how it ended and why (a sticky error, a crash, the watchdog, shutdown)
    sticky_fault,    // a launch's sticky error killed the worker's context: error_name, message, suspects
    watchdog_kill,   // a launch ran past its deadline and its worker was ended
    circuit_open,    // repeated worker failures: the GPU is not scheduled until the cooldown ends
    circuit_closed,  // the cooldown ended: the GPU is scheduled again
  };
  Kind kind = Kind::worker_started;
  int device = 0;
  int pid = -1;                          // the worker's, when one is concerned
  std::string message;                   // kiln's explanation
  std::uint64_t job_id = 0;              // the launch concerned (0: none)
  std::string request_id;                // its request's id (LaunchSpec::request_id)
  std::string error_name;                // CUDA_ERROR_ILLEGAL_ADDRESS, KILN_ERROR_TIMEOUT
  std::vector<BufferId> suspect_buffers; // buffers the launch could have written
};

std::string_view to_string(WorkerEvent::Kind kind) noexcept;

struct WorkerPoolOptions {
  // The kiln-worker binary. Empty: $KILN_WORKER_PATH, then kiln-worker next to the running
  // program, then the one built with kiln.
  std::string worker_path;
  int circuit_failures = 3;
  std::chrono::seconds circuit_window{60};
  std::chrono::seconds cooldown{30};
  std::chrono::milliseconds start_timeout{30000};
  GpuMode mode = GpuMode::isolation;
  std::map<int, GpuMode> modes;  // per GPU ordinal, overriding `mode` for that GPU
  GpuMode mode_of(int device) const {
    auto it = modes.find(device);
    return it == modes.end() ? mode : it->second;
  }
  int streams_per_gpu = 4;  // concurrent mode: launches a worker runs at once (1-256)
  // How long the supervisor polls for a worker's reply, and a worker for its next frame, before
  // sleeping (spin.hpp).
  std::chrono::microseconds spin = default_spin();
  std::size_t max_images_per_worker = 256;
  std::size_t max_image_bytes_per_worker = std::size_t{512} << 20;
  // Called for each WorkerEvent on the thread where it happens, with a GPU's lock held: it must be
  // quick and must not throw (an exception is dropped) or call back into the pool.
  std::function<void(const WorkerEvent&)> on_event;
};

class WorkerPool final : public GpuBackend {
 public:
  // Opens every GPU the driver lists and starts its worker. Throws kiln::Error without a driver.
  explicit WorkerPool(WorkerPoolOptions options = {});
  ~WorkerPool() override;

  std::vector<DeviceStatus> devices() override;
  BufferId create_buffer(int device, std::size_t bytes, std::string_view tag) override;
  std::size_t buffer_size(BufferId id) override;
  void write_buffer(BufferId id, std::size_t offset, std::span<const std::byte> data) override;
  std::vector<std::byte> read_buffer(BufferId id, std::size_t offset, std::size_t bytes) override;
  void read_buffer_into(BufferId id, std::size_t offset, std::span<std::byte> out) override;
  // Portable pinning (every GPU's context sees it pinned), in GPU 0's primary context.
  std::shared_ptr<void> pin_host_memory(void* data, std::size_t bytes) override;
  void free_buffer(BufferId id) override;
  ExportedMemory export_buffer(BufferId id) override;
  // Maps the memory in the supervisor (copies) and gives the GPU's worker its own descriptor.
  BufferId import_buffer(int device, ipc::UniqueFd fd, std::size_t bytes, std::string_view tag) override;
  LaunchResult launch(const LaunchSpec& spec) override;

  // The worker's process id for a GPU (-1 when none runs): for tests and metrics.
  int worker_pid(int device);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::service
