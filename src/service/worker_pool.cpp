#include "kiln/service/worker_pool.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>

#include "kiln/core/device.hpp"
#include "kiln/core/memory.hpp"
#include "kiln/core/shareable_buffer.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/ipc/channel.hpp"
#include "kiln/ipc/child_process.hpp"
#include "kiln/ipc/socket_pair.hpp"
#include "kiln/ipc/spawn.hpp"
#include "kiln/memory/out_of_memory.hpp"
#include "kiln/service/gpu_worker.hpp"
#include "kiln/version.hpp"
#include "service/detail/inflight_launches.hpp"
#include "service/detail/loaded_images.hpp"

namespace kiln::service {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::string find_worker(const std::string& configured) {
  if (!configured.empty()) return configured;
  if (const char* env = std::getenv("KILN_WORKER_PATH"); env && *env) return env;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && fs::exists(self.parent_path() / "kiln-worker")) return (self.parent_path() / "kiln-worker").string();
  return KILN_BUILT_WORKER_PATH;
}

constexpr int kWorkerFd = 3;  // where the GPU worker finds its end of the socket
constexpr std::chrono::milliseconds kShutdownGrace{2000}, kExitGrace{1000};

struct Buffer {
  core::ShareableBuffer memory;
  int device = 0;  // ordinal
  std::size_t requested = 0;
  // Memory another process allocated (import_buffer): its descriptor, duplicated for each worker
  // (an imported handle is not exported again).
  ipc::UniqueFd imported_fd;

  ipc::UniqueFd share() const {
    return imported_fd ? imported_fd.duplicate() : ipc::UniqueFd(memory.export_fd());
  }
};

struct Worker {
  ipc::ChildProcess process;
  ipc::Channel channel;  // the supervisor's sends
  std::set<BufferId> imported;
  detail::LoadedImages images;
  // The launches in flight and the thread reading the worker's replies. The reader is joined
  // (moved over or destroyed) only after the process is gone, when it sees end-of-file.
  std::shared_ptr<detail::InFlightLaunches> inflight;
  std::jthread reader;
};

// Completes the launches in flight from the worker's replies until it ends.
void read_replies(ipc::Channel channel, std::shared_ptr<detail::InFlightLaunches> inflight, std::string who) {
  std::string reported;  // the worker's last error frame: perhaps why it is ending
  for (;;) {
    try {
      ipc::Received r = channel.receive();
      if (!r) break;
      const auto type = r.frame.type_as<GpuWorkerFrame>();
      if (type == GpuWorkerFrame::launch_done) {
        inflight->complete(decode_outcome(r.frame.payload));
      } else if (type == GpuWorkerFrame::error) {
        PayloadReader p(r.frame.payload);
        const std::string name = p.bytes();
        reported = name + ": " + p.bytes();
      }
    } catch (const ipc::ChannelError& e) {
      if (e.failure() == ipc::ChannelError::Failure::truncated) break;  // it died while writing
      inflight->lose(who + " sent a broken reply: " + e.detail());
      return;
    } catch (const Error& e) {
      inflight->lose(who + " sent a reply that does not decode: " + e.detail());
      return;
    }
  }
  inflight->lose(who + " ended during the launch" + (reported.empty() ? "" : " (it last reported " + reported + ")"));
}

struct Slot {
  int ordinal = 0;
  DeviceStatus info;
  // One worker start at a time, and everything in `worker`; held while a launch is sent (so, in
  // isolation mode, frames reach the worker in the order of its InFlightLaunches), not while it runs.
  std::mutex mutex;
  Worker worker;
  std::deque<Clock::time_point> failures;
  Clock::time_point circuit_until{};
  std::mutex releases_mutex;
  std::vector<BufferId> pending_releases;  // buffers freed while a launch ran
  std::atomic<bool> up{false};
  bool ever_started = false;
  std::atomic<std::uint64_t> restarts{0}, kills{0}, image_bytes_sent{0};
  bool circuit_reported_open = false;  // a circuit_open event awaits its circuit_closed (slot's mutex)
  std::mutex failure_text_mutex;
  std::string last_failure;
  // Free memory as the driver last said, and when (steady-clock ns; 0: read it again). Every
  // launch asks for the devices and cuMemGetInfo is a driver round trip, so it is read at most
  // every kMemoryInfoMaxAge, and again after each buffer allocation or free.
  std::atomic<std::size_t> memory_free{0};
  std::atomic<std::int64_t> memory_read_ns{0};
};

constexpr std::chrono::milliseconds kMemoryInfoMaxAge{50};

// A launch refused because the GPU's circuit is open (requires the slot's mutex).
LaunchResult circuit_open(Slot& s, LaunchResult result) {
  result.status = LaunchStatus::device_unavailable;
  std::lock_guard text(s.failure_text_mutex);
  result.message = "GPU " + std::to_string(s.ordinal) + " is not scheduled (circuit open) after repeated "
                   "worker failures; last: " + s.last_failure;
  return result;
}

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

}  // namespace

std::string_view to_string(WorkerEvent::Kind kind) noexcept {
  switch (kind) {
    case WorkerEvent::Kind::worker_started: return "worker_started";
    case WorkerEvent::Kind::worker_start_failed: return "worker_start_failed";
    case WorkerEvent::Kind::worker_exited: return "worker_exited";
    case WorkerEvent::Kind::sticky_fault: return "sticky_fault";
    case WorkerEvent::Kind::watchdog_kill: return "watchdog_kill";
    case WorkerEvent::Kind::circuit_open: return "circuit_open";
    case WorkerEvent::Kind::circuit_closed: return "circuit_closed";
  }
  return "unknown";
}

struct WorkerPool::Impl {
  WorkerPoolOptions options;
  std::string worker_path;
  std::vector<std::unique_ptr<Slot>> slots;
  std::mutex buffers_mutex;
  std::unordered_map<BufferId, std::shared_ptr<Buffer>> buffers;
  std::atomic<BufferId> next_buffer{1};

  Slot& slot(int device) {
    if (device < 0 || device >= static_cast<int>(slots.size()))
      throw Error(Errc::invalid_argument, "no GPU " + std::to_string(device) + " (this machine has " +
                                              std::to_string(slots.size()) + ")");
    return *slots[static_cast<std::size_t>(device)];
  }

  std::shared_ptr<Buffer> buffer(BufferId id) {
    std::lock_guard lock(buffers_mutex);
    auto it = buffers.find(id);
    if (it == buffers.end()) throw Error(Errc::invalid_argument, "no buffer " + std::to_string(id));
    return it->second;
  }

  void emit(WorkerEvent e) noexcept {
    if (!options.on_event) return;
    try {
      options.on_event(e);
    } catch (...) {
    }
  }
  void emit(WorkerEvent::Kind kind, const Slot& s, std::string message, int pid = -1) noexcept {
    WorkerEvent e;
    e.kind = kind;
    e.device = s.ordinal;
    e.pid = pid;
    e.message = std::move(message);
    emit(std::move(e));
  }
  // A launch's event: its job, request and suspects.
  void emit(WorkerEvent::Kind kind, const Slot& s, const LaunchSpec& spec, const LaunchResult& r) noexcept {
    WorkerEvent e;
    e.kind = kind;
    e.device = s.ordinal;
    e.message = r.message;
    e.job_id = spec.job_id;
    e.request_id = spec.request_id;
    e.error_name = r.error_name;
    e.suspect_buffers = r.suspect_buffers;
    emit(std::move(e));
  }

  // The circuit's cooldown has ended since it opened: say so once. Requires s.mutex.
  void note_circuit_closed(Slot& s) {
    if (!s.circuit_reported_open || Clock::now() < s.circuit_until) return;
    s.circuit_reported_open = false;
    emit(WorkerEvent::Kind::circuit_closed, s, "GPU " + std::to_string(s.ordinal) + " is scheduled again (cooldown over)");
  }

  void note_failure(Slot& s, const std::string& why) {
    {
      std::lock_guard lock(s.failure_text_mutex);
      s.last_failure = why;
    }
    const auto now = Clock::now();
    s.failures.push_back(now);
    while (!s.failures.empty() && now - s.failures.front() > options.circuit_window) s.failures.pop_front();
    if (static_cast<int>(s.failures.size()) >= options.circuit_failures) {
      s.circuit_until = now + options.cooldown;
      s.failures.clear();
      s.circuit_reported_open = true;
      emit(WorkerEvent::Kind::circuit_open, s,
           "GPU " + std::to_string(s.ordinal) + ": " + std::to_string(options.circuit_failures) + " worker failures within " +
               std::to_string(options.circuit_window.count()) + " s; not scheduled for " +
               std::to_string(options.cooldown.count()) + " s; last: " + why);
    }
  }

  // Ends the worker (politely if it is alive and `polite`), reaps it, forgets what it had mapped.
  void stop_worker(Slot& s, bool polite) {
    Worker& w = s.worker;
    if (w.process.running()) {
      const int pid = w.process.pid();
      std::string how = "killed";
      if (polite && w.channel) {
        try {
          w.channel.send(GpuWorkerFrame::shutdown, {});
          how = "asked to stop: " + w.process.stop(kShutdownGrace).describe();
        } catch (const Error&) {
        }
      }
      w.process.kill_and_wait();
      emit(WorkerEvent::Kind::worker_exited, s,
           "the GPU worker for GPU " + std::to_string(s.ordinal) + " (pid " + std::to_string(pid) + ") was stopped (" + how + ")",
           pid);
    }
    w = Worker{};
    s.up = false;
  }

  // Reaps a worker that is exiting on its own (after a sticky error or a crash); kills it if slow.
  std::string reap_worker(Slot& s) {
    Worker& w = s.worker;
    std::string how = "ended";
    if (w.process.running()) {
      const int pid = w.process.pid();
      w.channel.close();
      how = w.process.stop(kExitGrace).describe();
      emit(WorkerEvent::Kind::worker_exited, s,
           "the GPU worker for GPU " + std::to_string(s.ordinal) + " (pid " + std::to_string(pid) + ") exited: " + how, pid);
    }
    w = Worker{};
    s.up = false;
    return how;
  }

  void start_worker(Slot& s) {
    try {
      start_worker_or_throw(s);
    } catch (const Error& e) {
      emit(WorkerEvent::Kind::worker_start_failed, s, e.what());
      throw;
    }
  }

  void start_worker_or_throw(Slot& s) {
    const std::string device = std::to_string(s.ordinal);
    ipc::SocketPair sockets = ipc::SocketPair::create();
    ipc::SpawnOptions spawn;
    spawn.program = worker_path;
    const bool concurrent = options.mode_of(s.ordinal) == GpuMode::concurrent;
    spawn.arguments = {"--socket", std::to_string(kWorkerFd), "--device", device, "--lanes",
                       std::to_string(concurrent ? options.streams_per_gpu : 1), "--spin-us", std::to_string(options.spin.count())};
    spawn.fds = {{kWorkerFd, sockets.second.get()}};
    // Lazy loading (CUDA 12's default) loads a kernel at its first launch and may synchronize the
    // context to do so: a short kernel's first launch would then wait for a long one beside it.
    // A concurrent worker loads each module whole, at the first launch of its image.
    if (concurrent) spawn.environment["CUDA_MODULE_LOADING"] = "EAGER";
    try {
      s.worker.process = ipc::spawn(spawn);
    } catch (const Error& e) {
      throw Error(Errc::internal, "cannot start the GPU worker for GPU " + device + ": " + e.detail() +
                                      " (set KILN_WORKER_PATH to the kiln-worker binary)");
    }
    sockets.second.reset();  // the worker holds its end now
    const std::string who = "the GPU worker for GPU " + device + " (pid " + std::to_string(s.worker.process.pid()) + ")";
    // Replies are read on their own descriptor (a Channel serves one thread), by the reader.
    ipc::UniqueFd reading = sockets.first.duplicate();
    s.worker.channel = ipc::Channel(std::move(sockets.first), gpu_worker_channel(who, options.spin));
    s.worker.images = detail::LoadedImages({options.max_images_per_worker, options.max_image_bytes_per_worker});
    ipc::Received hello;
    try {
      hello = s.worker.channel.receive_for(options.start_timeout);
    } catch (const ipc::ChannelError& e) {
      if (e.failure() != ipc::ChannelError::Failure::truncated) {
        stop_worker(s, false);
        throw Error(Errc::internal, who + " sent something other than its greeting: " + e.detail());
      }
    }
    if (hello.status == ipc::ReceiveStatus::closed) {
      const std::string how = reap_worker(s);
      throw Error(Errc::internal, who + " ended (" + how + ") while starting");
    }
    const auto type = hello.frame.type_as<GpuWorkerFrame>();
    if (!hello || type != GpuWorkerFrame::ready) {
      std::string why = !hello ? "did not report ready within " + std::to_string(options.start_timeout.count()) + " ms"
                               : "reported an error";
      if (hello && type == GpuWorkerFrame::error) {
        try {
          PayloadReader r(hello.frame.payload);
          r.bytes();
          why += ": " + r.bytes();
        } catch (const Error&) {
          why += " it could not encode";
        }
      }
      stop_worker(s, false);
      throw Error(Errc::internal, who + " " + why);
    }
    // Isolation: the worker runs one launch at a time, in the order sent (the next ones queue in
    // its socket, so it never waits for a round trip); concurrent: on its streams, in any order.
    s.worker.inflight = std::make_shared<detail::InFlightLaunches>(
        concurrent ? detail::InFlightLaunches::Order::any : detail::InFlightLaunches::Order::sequential, options.spin);
    s.worker.reader = std::jthread(read_replies, ipc::Channel(std::move(reading), gpu_worker_channel(who, options.spin)),
                                   s.worker.inflight, who);
    s.up = true;
    emit(WorkerEvent::Kind::worker_started, s, who + " is up (" + (concurrent ? "concurrent" : "isolation") + " mode)",
         s.worker.process.pid());
  }

  // A worker lost with launches in flight (they have their results) is reaped here, once, by the
  // first thread that finds it.
  void retire_if_lost(Slot& s) {
    if (!s.worker.inflight || !s.worker.inflight->lost()) return;
    const std::string why = s.worker.inflight->loss();
    reap_worker(s);
    note_failure(s, why);
  }

  // Sends the launch's image unless this worker incarnation holds it, and unloads what that
  // evicts. Requires s.mutex.
  void send_image(Slot& s, const LaunchSpec& spec) {
    if (s.worker.images.touch(spec.image_key)) return;
    for (const std::string& key : s.worker.images.add(spec.image_key, spec.image->size()))
      s.worker.channel.send(GpuWorkerFrame::forget_image, encode_forget_image(key));
    s.worker.channel.send(GpuWorkerFrame::load_image, encode_load_image(spec.image_key, *spec.image));
    s.image_bytes_sent.fetch_add(spec.image->size(), std::memory_order_relaxed);
  }

  LaunchResult launch_through_worker(Slot& s, const LaunchSpec& spec,
                                     const std::vector<std::pair<BufferId, std::shared_ptr<Buffer>>>& used,
                                     const std::vector<BufferId>& suspects);

  // Brings the worker up and maps every buffer the launch names that it has not mapped yet.
  void prepare(Slot& s, const std::vector<std::pair<BufferId, std::shared_ptr<Buffer>>>& used) {
    retire_if_lost(s);
    if (!s.up) {
      if (s.worker.process.running()) reap_worker(s);
      start_worker(s);
      if (s.ever_started) s.restarts.fetch_add(1);
      s.ever_started = true;
    }
    std::vector<BufferId> releases;
    {
      std::lock_guard lock(s.releases_mutex);
      releases.swap(s.pending_releases);
    }
    for (BufferId id : releases)
      if (s.worker.imported.erase(id))
        s.worker.channel.send(GpuWorkerFrame::release_buffer, PayloadWriter().u64(id).take());
    for (const auto& [id, buf] : used) {
      if (s.worker.imported.count(id)) continue;
      const ipc::UniqueFd fd = buf->share();  // the worker gets its own copy
      const int fds[] = {fd.get()};
      s.worker.channel.send(GpuWorkerFrame::import_buffer, PayloadWriter().u64(id).u64(buf->memory.size()).take(), fds);
      s.worker.imported.insert(id);
    }
  }
};

WorkerPool::WorkerPool(WorkerPoolOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  impl_->worker_path = find_worker(options.worker_path);
  const int n = core::Device::count();
  for (int i = 0; i < n; ++i) {
    auto s = std::make_unique<Slot>();
    s->ordinal = i;
    core::Device d = core::Device::get(i);
    s->info.ordinal = i;
    s->info.name = d.name();
    s->info.uuid = d.uuid();
    s->info.pci_bus_id = d.pci_bus_id();
    s->info.arch = d.compute_capability_major() * 10 + d.compute_capability_minor();
    s->info.memory_total = d.total_memory();
    d.primary_context();  // the supervisor's own context, for buffers
    impl_->slots.push_back(std::move(s));
  }
  for (auto& s : impl_->slots) {
    std::lock_guard lock(s->mutex);
    try {
      impl_->start_worker(*s);
      s->ever_started = true;
    } catch (const Error& e) {
      impl_->note_failure(*s, e.what());
    }
  }
}

WorkerPool::~WorkerPool() {
  for (auto& s : impl_->slots) {
    std::lock_guard lock(s->mutex);
    impl_->stop_worker(*s, true);
  }
  std::lock_guard lock(impl_->buffers_mutex);
  impl_->buffers.clear();
}

std::vector<DeviceStatus> WorkerPool::devices() {
  std::vector<DeviceStatus> out;
  for (auto& s : impl_->slots) {
    DeviceStatus d = s->info;
    d.worker_up = s->up.load();
    d.worker_restarts = s->restarts.load();
    d.watchdog_kills = s->kills.load();
    d.image_bytes_sent = s->image_bytes_sent.load(std::memory_order_relaxed);
    {
      std::lock_guard lock(s->failure_text_mutex);
      d.last_failure = s->last_failure;
    }
    d.circuit_open = Clock::now() < s->circuit_until;
    const std::int64_t now = steady_ns();
    if (now - s->memory_read_ns.load(std::memory_order_acquire) > std::chrono::nanoseconds(kMemoryInfoMaxAge).count()) {
      try {
        s->memory_free.store(core::Device::get(s->ordinal).memory_info().first, std::memory_order_relaxed);
        s->memory_read_ns.store(now, std::memory_order_release);
      } catch (const Error&) {
        // Keep the last value; the next call tries again.
      }
    }
    d.memory_free = s->memory_free.load(std::memory_order_relaxed);
    out.push_back(std::move(d));
  }
  return out;
}

BufferId WorkerPool::create_buffer(int device, std::size_t bytes, std::string_view tag) {
  impl_->slot(device);  // validates the ordinal
  auto b = std::make_shared<Buffer>();
  const core::Device dev = core::Device::get(device);
  try {
    // The tracker sees kilnd's buffers under their tags.
    b->memory = core::ShareableBuffer::allocate(dev.primary_context(), bytes, tag);
  } catch (const Error& e) {
    if (!e.is(Domain::driver, CUDA_ERROR_OUT_OF_MEMORY)) throw;
    throw memory::OutOfMemoryError(memory::picture_of(dev, bytes, 0), "cuMemCreate");
  }
  b->device = device;
  b->requested = bytes;
  const BufferId id = impl_->next_buffer.fetch_add(1);
  impl_->slot(device).memory_read_ns.store(0, std::memory_order_release);
  std::lock_guard lock(impl_->buffers_mutex);
  impl_->buffers.emplace(id, std::move(b));
  return id;
}

std::size_t WorkerPool::buffer_size(BufferId id) { return impl_->buffer(id)->requested; }

namespace {
void check_range(BufferId id, std::size_t size, std::size_t offset, std::size_t bytes) {
  if (offset > size || bytes > size - offset)
    throw Error(Errc::invalid_argument, "bytes [" + std::to_string(offset) + ", " + std::to_string(offset + bytes) +
                                            ") are outside buffer " + std::to_string(id) + " of " +
                                            std::to_string(size) + " bytes");
}
}  // namespace

void WorkerPool::write_buffer(BufferId id, std::size_t offset, std::span<const std::byte> data) {
  auto b = impl_->buffer(id);
  check_range(id, b->requested, offset, data.size());
  if (data.empty()) return;
  core::copy(b->memory.data() + offset, data.data(), data.size(), b->memory.context());
}

std::vector<std::byte> WorkerPool::read_buffer(BufferId id, std::size_t offset, std::size_t bytes) {
  auto b = impl_->buffer(id);
  check_range(id, b->requested, offset, bytes);
  std::vector<std::byte> out(bytes);
  if (bytes == 0) return out;
  core::copy(out.data(), b->memory.data() + offset, bytes, b->memory.context());
  return out;
}

void WorkerPool::read_buffer_into(BufferId id, std::size_t offset, std::span<std::byte> out) {
  auto b = impl_->buffer(id);
  check_range(id, b->requested, offset, out.size());
  if (out.empty()) return;
  core::copy(out.data(), b->memory.data() + offset, out.size(), b->memory.context());
}

std::shared_ptr<void> WorkerPool::pin_host_memory(void* data, std::size_t bytes) {
  if (impl_->slots.empty()) return {};
  core::PinnedOptions options;
  options.portable = true;
  return std::make_shared<core::HostRegistration>(core::HostRegistration::register_memory(
      core::Device::get(impl_->slots.front()->ordinal).primary_context(), data, bytes, options, "kilnd:shm"));
}

void WorkerPool::free_buffer(BufferId id) {
  std::shared_ptr<Buffer> b;
  {
    std::lock_guard lock(impl_->buffers_mutex);
    auto it = impl_->buffers.find(id);
    if (it == impl_->buffers.end()) throw Error(Errc::invalid_argument, "no buffer " + std::to_string(id));
    b = std::move(it->second);
    impl_->buffers.erase(it);
  }
  Slot& s = impl_->slot(b->device);
  b.reset();  // the supervisor's mapping and handle go now (the worker's at its next launch)
  s.memory_read_ns.store(0, std::memory_order_release);
  std::lock_guard lock(s.releases_mutex);
  s.pending_releases.push_back(id);  // the worker unmaps it before its next launch
}

GpuBackend::ExportedMemory WorkerPool::export_buffer(BufferId id) {
  auto b = impl_->buffer(id);
  return {b->share(), b->memory.size()};
}

BufferId WorkerPool::import_buffer(int device, ipc::UniqueFd fd, std::size_t bytes, std::string_view tag) {
  impl_->slot(device);  // validates the ordinal
  if (!fd) throw Error(Errc::invalid_argument, "importing memory needs a file descriptor");
  auto b = std::make_shared<Buffer>();
  b->imported_fd = fd.duplicate();
  try {
    b->memory = core::ShareableBuffer::import(core::Device::get(device).primary_context(), fd.release(), bytes);
  } catch (const Error& e) {
    throw Error(Errc::invalid_argument, "the descriptor's memory (" + std::string(tag) + ") cannot be mapped as " +
                                            std::to_string(bytes) + " bytes on GPU " + std::to_string(device) +
                                            " (it must be a cuMemCreate allocation exported as a POSIX file "
                                            "descriptor, and bytes its whole size): " + e.what());
  }
  b->device = device;
  b->requested = bytes;
  const BufferId id = impl_->next_buffer.fetch_add(1);
  std::lock_guard lock(impl_->buffers_mutex);
  impl_->buffers.emplace(id, std::move(b));
  return id;
}

int WorkerPool::worker_pid(int device) {
  Slot& s = impl_->slot(device);
  std::lock_guard lock(s.mutex);
  return s.up ? s.worker.process.pid() : -1;
}

LaunchResult WorkerPool::launch(const LaunchSpec& spec) {
  LaunchResult result;
  Slot& s = impl_->slot(spec.device);
  if (!spec.image || spec.image->empty()) {
    result.status = LaunchStatus::failed;
    result.error_name = "KILN_ERROR_INVALID_ARGUMENT";
    result.message = "job " + std::to_string(spec.job_id) + ": the launch carries no image (LaunchSpec::image)";
    return result;
  }
  std::vector<std::pair<BufferId, std::shared_ptr<Buffer>>> used;
  for (const KernelArgument& a : spec.arguments)
    if (const auto* b = std::get_if<BufferArgument>(&a)) {
      auto buf = impl_->buffer(b->buffer);
      if (buf->device != spec.device)
        throw Error(Errc::invalid_argument, "buffer " + std::to_string(b->buffer) + " is on GPU " +
                                                std::to_string(buf->device) + ", the launch on GPU " +
                                                std::to_string(spec.device));
      used.emplace_back(b->buffer, std::move(buf));
    }
  auto suspects = [&] {
    std::vector<BufferId> ids;
    for (auto& [id, _] : used) ids.push_back(id);
    return ids;
  };
  return impl_->launch_through_worker(s, spec, used, suspects());
}

LaunchResult WorkerPool::Impl::launch_through_worker(Slot& s, const LaunchSpec& spec,
                                                     const std::vector<std::pair<BufferId, std::shared_ptr<Buffer>>>& used,
                                                     const std::vector<BufferId>& suspects) {
  LaunchResult result;
  const auto start = Clock::now();
  std::shared_ptr<detail::InFlightLaunches> inflight;
  std::optional<LaunchResult> reply;
  // A launch that never reached a worker (it was lost just before) is sent to its replacement,
  // and one whose image the worker did not hold is repeated after the image: a few attempts.
  for (int attempt = 0; attempt < 3 && !reply; ++attempt) {
    inflight.reset();
    {
      std::lock_guard lock(s.mutex);
      note_circuit_closed(s);
      if (Clock::now() < s.circuit_until) return circuit_open(s, std::move(result));
      bool registered = false;
      try {
        prepare(s, used);
        inflight = s.worker.inflight;
        if (!inflight || !inflight->add(spec.job_id, suspects)) continue;  // lost since prepare: again
        registered = true;
        send_image(s, spec);
        s.worker.channel.send(GpuWorkerFrame::launch, encode_launch(spec));
      } catch (const Error& e) {
        // The frame did not reach the worker: it is gone or going (after a sticky error it reads
        // nothing more). Reaping it joins its reader, so the record then says how it was lost.
        if (registered) inflight->remove(spec.job_id);
        const bool ours = inflight && s.worker.inflight == inflight;
        reap_worker(s);
        note_failure(s, ours && inflight->lost() ? inflight->loss() : std::string(e.what()));
        if (ours && attempt + 1 < 3) continue;  // to its replacement
        result.status = LaunchStatus::device_unavailable;
        result.message = e.what();
        return result;
      }
    }
    reply = inflight->wait(spec.job_id, spec.deadline);
    if (!reply) {
      std::lock_guard lock(s.mutex);
      reply = inflight->blame(spec.job_id, "ran past its deadline, and the worker was ended to stop its kernel");
      if (!reply) {
        // Past the deadline: the kernel cannot be stopped, its process can (with its neighbours).
        if (s.worker.inflight == inflight) stop_worker(s, false);
        s.kills.fetch_add(1);
        const std::string why = "job " + std::to_string(spec.job_id) + " ran past its deadline; its GPU worker "
                                "was ended to stop the kernel (nothing else can stop a running kernel)";
        note_failure(s, why);
        result.status = LaunchStatus::timed_out;
        result.error_name = "KILN_ERROR_TIMEOUT";
        result.message = why;
        result.suspect_buffers = suspects;
        emit(WorkerEvent::Kind::watchdog_kill, s, spec, result);
        break;
      }
    }
    if (reply->error_name == kImageNotLoaded && attempt + 1 < 3) {
      std::lock_guard lock(s.mutex);
      if (s.worker.inflight == inflight) s.worker.images.forget(spec.image_key);
      reply.reset();
    } else if (reply->error_name == detail::kNotStarted && attempt + 1 < 3) {
      // Isolation: it waited its turn behind the launch that ended the worker: never ran, so it
      // runs on the replacement.
      reply.reset();
    }
  }
  if (reply && reply->error_name == detail::kNotStarted) {
    result.status = LaunchStatus::device_unavailable;
    result.message = reply->message + ", but its replacements were lost too";
  } else if (reply) {
    result = std::move(*reply);
  } else if (result.status == LaunchStatus::completed) {
    result.status = LaunchStatus::device_unavailable;
    result.message = "GPU " + std::to_string(spec.device) + ": the launch could not be handed to a GPU worker";
  }
  result.elapsed_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  // A lost worker is replaced at once, so the GPU is ready again before the next request.
  if (result.sticky || (inflight && inflight->lost()) || !s.up) {
    std::lock_guard lock(s.mutex);
    if (result.sticky) emit(WorkerEvent::Kind::sticky_fault, s, spec, result);
    retire_if_lost(s);
    if (!s.up && Clock::now() >= s.circuit_until) {
      try {
        prepare(s, {});
      } catch (const Error& e) {
        note_failure(s, e.what());
      }
    }
  }
  return result;
}

}  // namespace kiln::service
