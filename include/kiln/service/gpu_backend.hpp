// What kilnd's gateway and scheduler need from the GPUs, and nothing more. The implementation is the
// supervisor (WorkerPool): one worker process per GPU, buffers owned by the supervisor so they
// survive a worker's death. On a machine without a GPU it reports no devices, and the gateway
// answers buffer and launch requests with "no GPU" (503) while everything else works.
//
// Thread safety: every member may be called from any thread at once.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "kiln/ipc/unique_fd.hpp"

namespace kiln::service {

using BufferId = std::uint64_t;

struct DeviceStatus {
  int ordinal = 0;
  std::string name;
  std::string uuid;
  std::string pci_bus_id;
  int arch = 0;  // 90 for sm_90
  std::size_t memory_total = 0;
  std::size_t memory_free = 0;
  bool worker_up = false;     // a worker process serves this GPU now
  bool circuit_open = false;  // too many recent failures: not scheduled until it cools down
  std::uint64_t worker_restarts = 0;
  std::uint64_t watchdog_kills = 0;
  std::uint64_t image_bytes_sent = 0;  // kernel image bytes sent to this GPU's workers (each image once per worker)
  std::string last_failure;
};

// A scalar argument: its type name and its bytes (little-endian, the low `size` bytes are used).
struct ScalarArgument {
  enum class Type : std::uint8_t { i32, u32, i64, u64, f32, f64 };
  Type type = Type::i32;
  std::uint64_t bits = 0;
  std::size_t size() const noexcept { return type == Type::i32 || type == Type::u32 || type == Type::f32 ? 4 : 8; }
};

// A buffer argument: the kernel receives the buffer's device address plus `offset`.
struct BufferArgument {
  BufferId buffer = 0;
  std::uint64_t offset = 0;
};

using KernelArgument = std::variant<ScalarArgument, BufferArgument>;

struct LaunchSpec {
  std::string tenant;
  std::uint64_t job_id = 0;
  std::string request_id;                    // the HTTP request that made the job, for its log lines
  std::shared_ptr<const std::string> image;  // CUBIN or NUL-terminated PTX
  std::string image_key;                     // stable identity of the image (the JIT cache key)
  std::string kernel;                        // the symbol to launch (lowered name)
  std::string package;                       // a repository package's launch: its name, for reports
  std::uint64_t package_version = 0;         // and the version it was dispatched to
  std::array<unsigned, 3> grid{1, 1, 1};
  std::array<unsigned, 3> block{1, 1, 1};
  unsigned shared_bytes = 0;
  std::vector<KernelArgument> arguments;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  int device = 0;
};

enum class LaunchStatus : std::uint8_t {
  completed,
  failed,              // the launch itself failed (bad arguments, launch error, kernel fault)
  timed_out,           // past its deadline: the worker was ended to stop the kernel
  device_unavailable,  // no worker, circuit open, or the GPU is gone
};

struct LaunchResult {
  LaunchStatus status = LaunchStatus::completed;
  std::string error_name;  // e.g. CUDA_ERROR_ILLEGAL_ADDRESS
  std::string message;     // kiln's explanation, with its hint
  bool sticky = false;     // the worker's context died with it (the worker was replaced)
  double elapsed_ms = 0;   // from submission to the worker until its reply
  std::vector<BufferId> suspect_buffers;  // buffers the failed launch could have written
};

class GpuBackend {
 public:
  virtual ~GpuBackend() = default;
  virtual std::vector<DeviceStatus> devices() = 0;
  // Why this backend can run nothing at all (no driver, no GPU); empty when it has devices.
  virtual std::string unavailable_reason() { return {}; }
  // Throws kiln::Error: invalid_argument (bad device, size 0), memory::OutOfMemoryError.
  virtual BufferId create_buffer(int device, std::size_t bytes, std::string_view tag) = 0;
  virtual std::size_t buffer_size(BufferId id) = 0;
  virtual void write_buffer(BufferId id, std::size_t offset, std::span<const std::byte> data) = 0;
  virtual std::vector<std::byte> read_buffer(BufferId id, std::size_t offset, std::size_t bytes) = 0;
  // Reads into `out` without a copy through a vector (out.size() bytes from `offset`).
  virtual void read_buffer_into(BufferId id, std::size_t offset, std::span<std::byte> out) {
    const std::vector<std::byte> data = read_buffer(id, offset, out.size());
    std::copy(data.begin(), data.end(), out.begin());
  }
  // Pins host memory that kilnd mapped (a client's shared memory) for the GPUs, so copies between
  // it and buffers run at pinned speed; released, the result unpins it. Empty where nothing can be
  // pinned (no GPU): copies from the memory still work, as pageable ones. Throws kiln::Error.
  virtual std::shared_ptr<void> pin_host_memory(void* data, std::size_t bytes) {
    (void)data;
    (void)bytes;
    return {};
  }
  virtual void free_buffer(BufferId id) = 0;
  // CUDA IPC with a co-located process. export_buffer: a new descriptor for the buffer's memory
  // (a VMM POSIX file descriptor: the other process maps it with cuMemImportFromShareableHandle)
  // and the size it maps. import_buffer: memory another process allocated that way becomes a
  // buffer like the backend's own (launch arguments, copies); `bytes` is the allocation's size.
  // The memory lives while anyone holds it: the exporter's free does not unmap it elsewhere.
  // Throws kiln::Error (invalid_argument: no such buffer or device, memory that cannot be mapped).
  struct ExportedMemory {
    ipc::UniqueFd fd;
    std::size_t mapped_bytes = 0;
  };
  // The defaults refuse (invalid_argument): a backend without shareable memory.
  virtual ExportedMemory export_buffer(BufferId id);
  virtual BufferId import_buffer(int device, ipc::UniqueFd fd, std::size_t bytes, std::string_view tag);
  // Blocks until the launch completes, fails, or passes its deadline.
  virtual LaunchResult launch(const LaunchSpec& spec) = 0;
};

}  // namespace kiln::service
