// ServiceConfig: everything kilnd can be told, with embedded defaults that need no file: loopback,
// the default kernel cache folder, a generated token. A JSON file sets any subset of the keys
// (docs/SERVICE.md lists them); command-line flags override the file.
//
// Thread safety: a plain value; the loaders are free functions without shared state.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/jit/program.hpp"
#include "kiln/jit/source_policy.hpp"
#include "kiln/service/gpu_mode.hpp"
#include "kiln/service/log.hpp"
#include "kiln/service/spin.hpp"

namespace kiln::service {

jit::SourcePolicy default_source_policy();

// A named device library kernels may link with (POST /v1/kernels "libraries"): LTO-IR built ahead of
// time (`kiln compile --lto`), a source file compiled to LTO-IR at first use for each architecture
// (through the kernel cache, under the source policy), or both (the LTO-IR serves its architecture,
// the source every other one). The files are read and checked when kilnd starts.
struct DeviceLibraryConfig {
  std::filesystem::path ltoir;   // prebuilt LTO-IR
  int arch = 0;                  // its architecture (90); 0: read from the LTO-IR's header
  std::filesystem::path source;  // CUDA source of device functions
  jit::CompileOptions options;   // for the source (std, defines, fast_math, ...)
  // include name -> file: the declarations kernels include ("mathlib.h"), served from memory to
  // every kernel linking the library (and to its source).
  std::map<std::string, std::filesystem::path> headers;
  std::optional<std::vector<std::string>> tenants;  // nullopt: every tenant may link it
};
unsigned default_compile_workers();

// How kilnd follows its kernel repository (docs/REPOSITORY.md), as Triton's model control modes do.
enum class RepositoryMode : std::uint8_t {
  none,      // load what the version policy wants at start; no load or unload afterwards
  explicit_, // load what `load` names at start; then only POST .../load and .../unload change it
  poll,      // like none at start, then watch the folder: new versions load, removed ones unload
};
std::string_view to_string(RepositoryMode mode) noexcept;  // "none", "explicit", "poll"
std::optional<RepositoryMode> parse_repository_mode(std::string_view text) noexcept;

// A folder of kernel packages, <path>/<name>/<version>/manifest.json (jit::Package).
struct RepositoryConfig {
  std::filesystem::path path;  // empty: no repository
  RepositoryMode mode = RepositoryMode::none;
  std::chrono::milliseconds poll_interval{2000};
  // Version policy: the newest `latest` versions of each package stay loaded (0: every version);
  // a package named in `pinned` keeps exactly those versions instead. The version a rollback
  // returns to stays loaded as well.
  std::size_t latest = 1;
  std::map<std::string, std::vector<std::uint64_t>> pinned;
  std::vector<std::string> load;       // explicit mode: the packages loaded at start
  // Tenants that may load, unload and roll back packages; none: nobody may (the folder decides).
  std::vector<std::string> operators;
  // Tenants that may launch a package whose manifest lists none; nullopt: every tenant.
  std::optional<std::vector<std::string>> tenants;
};

struct ServiceConfig {
  std::string listen_address = "127.0.0.1";  // loopback unless told otherwise
  int port = 8470;                           // 0: an ephemeral port (Server::port() says which)
  // kilnd's gRPC front end (proto/kiln/v1/kilnd.proto) on listen_address: 0 (the default) leaves it
  // off. Only in builds with gRPC (KILN_WITH_GRPC); elsewhere kilnd refuses a non-zero port.
  int grpc_port = 0;
  // gRPC calls served at once (the synchronous server's threads): gRPC refuses a call that finds
  // none free (RESOURCE_EXHAUSTED) instead of queueing it as HTTP does, so this is well above
  // http_threads; an idle thread costs its stack.
  int grpc_threads = 128;
  std::filesystem::path tokens_file;         // "tenant token" lines; empty: one generated token
  bool allow_insecure_tokens = false;        // start (with a warning) when group or others may access it
  // HTTP (docs/SERVICE.md): connections cost no thread; a request that may block (a compile, a
  // launch, a copy, a long poll) holds one of http_threads while it runs.
  int http_threads = 16;
  int http_io_threads = 2;                            // threads reading and writing every connection
  // How long a thread polls before sleeping where the next event is microseconds away (a handler
  // thread for the next request, the GPU worker's reply, the worker's next launch): spin.hpp.
  std::chrono::microseconds spin = default_spin();
  std::size_t max_connections = 16384;                // open at once (503 and closed above)
  std::size_t max_connections_per_client = 4096;      // open at once from one client address
  std::chrono::milliseconds header_timeout{10000};    // a request's first byte to the end of its headers
  std::chrono::milliseconds idle_timeout{60000};      // a kept-alive connection between requests
  std::chrono::milliseconds body_timeout{10000};      // a body: this, plus its size at min_body_rate
  std::size_t min_body_rate = 64 * 1024;              // bytes per second
  std::chrono::milliseconds write_timeout{30000};     // an answer to a client that does not read it

  std::size_t max_body_bytes = 64u << 20;       // any request, binary uploads included (413 above)
  std::size_t max_json_bytes = 4u << 20;        // a JSON request body (413 above)
  std::size_t max_buffer_bytes = 16ull << 30;   // one buffer (413 above)
  // Co-located clients may register POSIX shared memory (POST /v1/shm): off unless asked, as
  // kilnd then reads and writes memory other processes map.
  bool allow_client_shm = false;
  std::size_t max_shm_regions_per_tenant = 64;
  // CUDA IPC with co-located clients over the Unix socket at ipc_socket (empty: none): a buffer's
  // memory exported to a client, a client's device memory imported as a buffer. Off unless asked,
  // as clients then map kilnd's device memory and kilnd maps theirs.
  bool allow_client_ipc = false;
  std::string ipc_socket;
  std::size_t max_kernels_per_tenant = 1024;
  std::size_t max_launch_arguments = 256;
  std::size_t max_json_depth = 64;              // nested arrays and objects in a JSON body (400 above)
  std::size_t max_json_values = 65536;          // values and keys in a JSON body (400 above)

  // Device libraries by name (DeviceLibraryConfig); docs/SERVICE.md "Device libraries".
  std::map<std::string, DeviceLibraryConfig> device_libraries;

  // The kernel repository (RepositoryConfig; docs/REPOSITORY.md).
  RepositoryConfig repository;

  std::filesystem::path cache_dir;              // empty: the JIT's default folder
  std::size_t cache_memory_bytes = 256u << 20;  // the in-memory tier
  int fallback_arch = 90;  // the architecture kernels are checked for when there is no GPU

  std::size_t max_queued_jobs = 10000;            // all tenants together (429 above)
  std::size_t max_queued_jobs_per_tenant = 1000;  // one tenant (429 above)
  std::chrono::milliseconds aging_step{2000};     // a waiting job rises one priority level per step
  int dispatchers_per_device = 2;                 // threads calling GpuBackend::launch per GPU (isolation)
  // How each GPU's worker runs launches (gpu_mode.hpp): one at a time (isolation: a sticky fault
  // loses only its own launch) or up to streams_per_gpu at once (concurrent: a sticky fault, a
  // deadline or a crash aborts every launch in flight on that worker). In concurrent mode the
  // scheduler runs streams_per_gpu dispatchers per GPU instead of dispatchers_per_device.
  GpuMode gpu_mode = GpuMode::isolation;
  std::map<int, GpuMode> gpu_modes;  // per GPU (CUDA ordinal), overriding gpu_mode for that GPU
  int streams_per_gpu = 4;
  std::chrono::milliseconds default_deadline{60000};
  std::chrono::milliseconds max_deadline{600000};
  std::chrono::milliseconds max_wait{30000};       // longest synchronous launch or long poll
  std::chrono::milliseconds drain_timeout{10000};  // graceful shutdown: running work gets this long
  std::chrono::seconds job_retention{600};         // finished jobs stay readable this long

  // Applied to every registered kernel. The service's defaults bound what one registration can
  // cost: 60 s of compile time and 4 GiB of memory, each enforced in a compile worker process.
  jit::SourcePolicy source_policy = default_source_policy();
  // NVRTC in this many compile worker processes (kiln-compile-worker) instead of kilnd's own:
  // needed for source_policy.max_compile_time and max_compile_memory (a compile past either is
  // refused, the process killed or left to recover). 0: in-process, which needs both limits at 0.
  // Default: half the hardware threads, 2 to 8.
  unsigned compile_workers = default_compile_workers();
  // Fairness between tenants (docs/SERVICE.md): a tenant runs at most this many compiles at once
  // (0: half of compile_workers, at least 1) and has at most max_queued_compiles_per_tenant more
  // waiting; beyond that a registration is refused with 429 at once.
  unsigned max_compiles_per_tenant = 0;
  unsigned max_queued_compiles_per_tenant = 4;

  // Scale-out (docs/SERVICE.md): with a queue URL, kernel compiles go through a Redis Stream that
  // every node sharing it consumes; launches stay with the node whose GPUs hold their buffers.
  std::string queue_url;                      // empty: in-process; redis://host:port[/db] or unix:///path
  std::string node_name;                      // empty: <hostname>-<pid>; unique among the nodes
  std::string queue_prefix = "kiln";          // Redis keys start with it (several clusters, one Redis)
  int cluster_compile_threads = 2;            // this node's consumers of the shared compile queue
  std::chrono::milliseconds cluster_lease{10000};  // a node silent this long loses its compile job
  std::uint32_t cluster_max_deliveries = 3;   // a job handed out this often is failed, not retried

  // Logs (log.hpp, docs/SERVICE.md "Logs"): text or JSON lines, from this level up, to standard
  // error or this file.
  LogFormat log_format = LogFormat::text;
  LogLevel log_level = LogLevel::info;
  std::filesystem::path log_file;
};

// Applies the keys of a JSON object (text) on top of `config`. Throws kiln::Error
// (Errc::invalid_argument) naming `origin` and the key for malformed JSON, an unknown key, a value
// of the wrong type or out of range.
void apply_config_json(ServiceConfig& config, std::string_view json_text, std::string_view origin);
// The defaults with the file's keys applied. Throws kiln::Error naming the file when unreadable.
ServiceConfig load_config_file(const std::filesystem::path& file);
// Refuses settings that cannot work together (port range, zero limits); the message names the key.
void validate(const ServiceConfig& config);
// max_compiles_per_tenant with its default (0) resolved.
unsigned compiles_per_tenant(const ServiceConfig& config);
// The mode of one GPU: its entry in gpu_modes, else gpu_mode.
GpuMode gpu_mode_of(const ServiceConfig& config, int device);
// Dispatcher threads for a GPU: dispatchers_per_device, or streams_per_gpu when it is concurrent.
int dispatchers_per_gpu(const ServiceConfig& config, int device);

}  // namespace kiln::service
