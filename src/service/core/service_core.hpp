// kilnd's service core: everything a request does once a front end has parsed and authenticated
// it. It owns the kernel and buffer registries, the compile cache and gate, the scheduler and (in
// scale-out) the shared-queue compiles; it validates a request once, places and submits it, and
// answers with a typed result or a typed ServiceError. It knows nothing of HTTP (no status codes,
// no headers): the HTTP front end (server.cpp) maps ServiceError::kind to a status, and a second
// front end (gRPC, the C ABI, shared memory) would map it its own way.
//
// Not public API: kilnd's front ends are its only users (see docs/ARCHITECTURE.md).
//
// Thread safety: every member may be called from any thread at once.
#pragma once

#include <chrono>
#include <atomic>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/kernel_repository.hpp"
#include "core/service_error.hpp"
#include "detail/buffer_registry.hpp"
#include "detail/shared_memory_regions.hpp"
#include "detail/cluster_compiles.hpp"
#include "detail/compile_gate.hpp"
#include "detail/device_libraries.hpp"
#include "detail/kernel_registry.hpp"
#include "kiln/ipc/unique_fd.hpp"
#include "kiln/jit/kernel_cache.hpp"
#include "kiln/service/config.hpp"
#include "kiln/service/in_process_queue.hpp"
#include "kiln/service/log.hpp"
#include "kiln/service/metrics.hpp"
#include "kiln/service/redis_stream_queue.hpp"
#include "kiln/service/requests.hpp"
#include "kiln/service/recent_activity.hpp"
#include "kiln/service/scheduler.hpp"
#include "kiln/service/worker_pool.hpp"

namespace kiln::service::core {


// A page of a tenant's items in increasing id order; next_after is the `after` for the next page,
// when there may be one.
template <class T>
struct Page {
  std::vector<T> items;
  std::optional<std::uint64_t> next_after;
};

// Lists are bounded: at most kMaxPageSize items per call (kDefaultPageSize when not asked).
inline constexpr std::size_t kDefaultPageSize = 100;
inline constexpr std::size_t kMaxPageSize = 1000;

struct PageRequest {
  std::uint64_t after = 0;  // items with a larger id
  std::size_t limit = kDefaultPageSize;
};

struct KernelTarget {
  std::string arch;  // "sm_90"
  std::string kind;  // "cubin", "ptx"
};

struct KernelInfo {
  std::uint64_t id = 0;
  std::string name;
  std::map<std::string, std::string> lowered_names;
  std::vector<KernelTarget> targets;
  std::vector<std::string> libraries;  // the device libraries it links
};

struct KernelRegistration {
  std::uint64_t id = 0;
  std::string name;
  std::map<std::string, std::string> lowered_names;
  std::vector<std::string> libraries;
  nlohmann::json targets;   // [{arch, kind, origin, compile_ms}]
  nlohmann::json warnings;  // [Diagnostic]
  std::string compiled_by;  // scale-out: the node that compiled it
};

using BufferInfo = detail::BufferRecord;

// A buffer's memory for a co-located process (CUDA IPC): a VMM POSIX file descriptor the client
// imports with cuMemImportFromShareableHandle, mapping mapped_bytes.
struct ExportedBuffer {
  BufferInfo buffer;
  ipc::UniqueFd fd;
  std::uint64_t mapped_bytes = 0;
  std::string device_uuid;
};

// A co-located client's device memory to use as a buffer: a cuMemCreate allocation exported as a
// POSIX file descriptor, `bytes` its whole size, on `device`. owner_pid: the registering process
// (the front end knows it from the socket's credentials); the buffer is dropped when it ends.
struct BufferImport {
  int device = 0;
  std::uint64_t bytes = 0;
  std::string tag;
  ipc::UniqueFd fd;
  int owner_pid = 0;
};

struct SharedMemoryInfo {
  std::uint64_t id = 0;
  std::string name;
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;
  int owner_pid = 0;    // 0: none
  bool pinned = false;  // pinned for the GPUs: copies run at pinned speed
};

// A device library as a tenant that may link it sees it (GET /v1/libraries).
struct LibraryInfo {
  std::string name;
  std::optional<int> prebuilt_arch;  // prebuilt LTO-IR and its architecture
  std::uint64_t ltoir_bytes = 0;     // 0 without prebuilt LTO-IR
  std::uint64_t source_bytes = 0;    // 0 without source
  std::vector<std::string> headers;  // include names kernels linking it may include
};

struct LaunchOutcome {
  JobSnapshot job;
  bool waited = false;             // the caller asked to wait (the job may still be unfinished)
  Clock::time_point checked{};     // when validation and placement were done (submission began)
};

struct Health {
  bool draining = false;
};

struct Readiness {
  std::vector<DeviceStatus> devices;
  std::string why_not;  // empty when ready
};

// Everything the status page shows, read at once (ServiceCore::status).
struct ServiceStatus {
  std::string node;     // node_name, or <hostname>-<pid>
  double uptime_s = 0;
  bool draining = false;
  bool ready = false;
  std::string why_not_ready;  // empty when ready
  // No GPU at all (no driver, or the driver finds none): why, as the backend says it.
  bool gpu_available = false;
  std::string no_gpu_reason;
  std::vector<DeviceStatus> devices;
  std::map<int, std::uint64_t> buffer_bytes_by_device;
  std::array<std::size_t, kPriorityCount> queue_depth{};
  std::size_t jobs_running = 0;
  std::array<std::uint64_t, kJobOutcomeCount> launches_total{};  // since start, by JobOutcome
  LaunchWindow recent;                                             // the last minute
  std::size_t kernels = 0;  // all tenants
  std::size_t compiles_running = 0, compiles_waiting = 0;
  jit::CacheStats cache;
  std::optional<ClusterMetrics> cluster;
  bool topology_known = false;
  std::string topology_reason;  // why there is no picture of the machine, when there is none
  // The caller's own failures and the machine's (GPU worker events), newest first: another
  // tenant's never appear.
  std::vector<RecentFailure> failures;
};

class ServiceCore {
 public:
  // Validates `config` (kiln::Error invalid_argument) and starts the scheduler.
  // `log` receives the core's events (cluster takeovers, the shared queue's trouble).
  ServiceCore(ServiceConfig config, GpuBackend& backend, std::shared_ptr<const topology::Topology> topology = {},
              Log log = {});
  ~ServiceCore();
  ServiceCore(const ServiceCore&) = delete;
  ServiceCore& operator=(const ServiceCore&) = delete;

  const ServiceConfig& config() const noexcept { return config_; }
  RequestLimits request_limits() const noexcept;

  // Kernels. `request_body` is the registration's JSON as received: scale-out sends it on as is.
  Result<KernelRegistration> register_kernel(const std::string& tenant, KernelRequest request, std::string_view request_body);
  Result<KernelInfo> kernel(const std::string& tenant, std::uint64_t id) const;
  Result<Done> delete_kernel(const std::string& tenant, std::uint64_t id);
  Page<KernelInfo> list_kernels(const std::string& tenant, PageRequest page) const;
  // The device libraries `tenant` may link, by name.
  std::vector<LibraryInfo> libraries(const std::string& tenant) const;

  // Buffers.
  Result<BufferInfo> create_buffer(const std::string& tenant, const BufferRequest& request);
  Result<BufferInfo> buffer(const std::string& tenant, std::uint64_t id) const;
  Result<Done> delete_buffer(const std::string& tenant, std::uint64_t id);
  Page<BufferInfo> list_buffers(const std::string& tenant, PageRequest page) const;
  Result<Done> write_buffer(const std::string& tenant, std::uint64_t id, std::uint64_t offset, std::span<const std::byte> data);
  // `bytes` empty: to the end of the buffer. The bytes as a string: what an answer's body is.
  Result<std::string> read_buffer(const std::string& tenant, std::uint64_t id, std::uint64_t offset,
                                  std::optional<std::uint64_t> bytes);

  // CUDA IPC with co-located clients: refused (forbidden) unless allow_client_ipc.
  Result<ExportedBuffer> export_buffer(const std::string& tenant, std::uint64_t id);
  Result<BufferInfo> import_buffer(const std::string& tenant, BufferImport request);
  // Frees the imported buffers whose owner process has ended; how many. The IPC front end calls it
  // at least once a second while it serves; export and import call it first.
  std::size_t sweep_client_buffers() noexcept;

  // Client shared memory (POSIX objects a co-located client made): refused (forbidden) unless
  // allow_client_shm. A region is mapped and pinned once; copies name it instead of a body.
  Result<SharedMemoryInfo> register_shared_memory(const std::string& tenant, const SharedMemoryRequest& request);
  Result<SharedMemoryInfo> shared_memory(const std::string& tenant, std::uint64_t id);
  Result<Done> unregister_shared_memory(const std::string& tenant, std::uint64_t id);
  Page<SharedMemoryInfo> list_shared_memory(const std::string& tenant, PageRequest page);
  // Between a buffer and a region, in the direction asked; the bytes copied.
  Result<std::uint64_t> copy_shared_memory(const std::string& tenant, std::uint64_t buffer, const SharedMemoryCopyRequest& request);

  // The kernel repository (docs/REPOSITORY.md): not_found for each when kilnd has none.
  std::vector<RepositoryPackage> repository_index(const std::string& tenant) const;
  Result<RepositoryPackage> repository_package(const std::string& tenant, std::string_view name) const;
  Result<RepositoryPackage> load_package(const std::string& tenant, std::string_view name,
                                         std::optional<std::uint64_t> version);
  Result<RepositoryPackage> unload_package(const std::string& tenant, std::string_view name,
                                           std::optional<std::uint64_t> version);
  Result<RepositoryPackage> rollback_package(const std::string& tenant, std::string_view name);
  KernelRepository* repository() noexcept { return repository_.get(); }  // null without one

  // Launches and jobs.
  // `request_id` goes with the job: its record and the GPU backend's LaunchSpec carry it.
  Result<LaunchOutcome> launch(const std::string& tenant, LaunchRequest request, std::string_view request_id = {});
  Result<JobSnapshot> job(const std::string& tenant, std::uint64_t id, std::chrono::milliseconds wait);
  Page<JobSnapshot> list_jobs(const std::string& tenant, PageRequest page);

  // Health, readiness and metrics.
  void begin_drain() noexcept { draining_.store(true, std::memory_order_release); }
  bool draining() const noexcept { return draining_.load(std::memory_order_acquire); }
  Readiness readiness();
  std::string metrics_text();
  void http_answered(int status) { metrics_.http_answered(status); }
  void grpc_answered(std::string_view method, std::string_view code) { metrics_.grpc_answered(method, code); }
  void ipc_answered(std::string_view op, std::string_view code) { metrics_.call_answered(Metrics::FrontEnd::ipc, op, code); }

  // The status page's data, as `tenant` may see it (its own failures and the machine's).
  ServiceStatus status(const std::string& tenant);
  // kiln's SVG picture of this machine (topology::render_svg), or a small SVG saying why there is
  // none (no GPU, topology discovery failed). Made once: the topology does not change.
  const std::string& topology_svg() const noexcept { return topology_svg_; }
  // A GPU worker's event (WorkerPoolOptions::on_event): failures go to the status page's list.
  void worker_event(const WorkerEvent& event) noexcept;

  // Stops accepting launches and lets queued and running ones finish for up to drain_timeout.
  // Idempotent; never throws.
  void drain_jobs() noexcept;
  // drain_jobs(), then frees every buffer (call it once no request can create one). Idempotent;
  // never throws.
  void shutdown() noexcept;

 private:
  template <class T, class F>
  Result<T> guarded(F&& body);
  std::string why_not_ready(const std::vector<DeviceStatus>& devices);
  // The device a new buffer goes on: unavailable without a GPU, invalid_argument for no such one.
  Result<DeviceStatus> buffer_device(int device);
  Result<Done> allow_ipc() const;
  const detail::CompiledImage* image_for(std::shared_ptr<const detail::RegisteredKernel>& kernel, int arch);
  Result<KernelRegistration> register_now(const std::string& tenant, KernelRequest& request, std::string_view request_body);
  std::string topology_reason();  // why there is no topology ("" when there is one)
  // A refused request, for the status page's failures.
  void note_refusal(std::string_view source, const std::string& tenant, std::string_view request_id,
                    const ServiceError& error) noexcept;

  ServiceConfig config_;
  GpuBackend& backend_;
  Log log_;
  std::shared_ptr<const topology::Topology> topology_;
  std::string topology_svg_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  Metrics metrics_;
  detail::DeviceLibraries libraries_;  // read when the core starts; immutable after
  jit::KernelCache cache_;
  detail::CompileGate compile_gate_;
  InProcessQueue queue_;
  Scheduler scheduler_;
  detail::KernelRegistry kernels_;
  detail::BufferRegistry buffers_;
  detail::SharedMemoryRegions shared_memory_;
  struct ClientBufferOwner {
    std::string tenant;
    ipc::UniqueFd pidfd;
  };
  std::mutex client_owners_mutex_;
  std::map<BufferId, ClientBufferOwner> client_owners_;  // imported buffers with an owner process
  std::unique_ptr<RedisStreamQueue> shared_queue_;  // scale-out only
  std::unique_ptr<detail::ClusterCompiles> cluster_;
  std::unique_ptr<KernelRepository> repository_;  // with repository.path only
  std::atomic<bool> draining_{false};
};

// Converts the exceptions the libraries below throw into a ServiceError (out_of_memory with the
// memory picture, policy with the rule of a jit::PolicyError, unavailable for a missing driver or
// NVRTC, library_unavailable for a missing nvJitLink, compile_failed for a compile or link error,
// invalid_argument, out_of_host_memory, internal with the error's name).
ServiceError error_from_exception(std::exception_ptr ep) noexcept;

}  // namespace kiln::service::core
