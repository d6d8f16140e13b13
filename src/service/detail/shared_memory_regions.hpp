// Client shared-memory regions: POSIX shared memory objects a co-located client created and
// registered with kilnd by name. kilnd maps each once, has the backend pin it for the GPUs (copies
// between it and device buffers then run at pinned speed, with no HTTP body), and drops it when the
// client unregisters it, when the owner process it named has ended, or at shutdown. A tenant sees
// only its own: another tenant's region reads as absent.
//
// Thread safety: every member may be called from any thread. A copy holds the region's mapping
// (shared_ptr), so unregistering during a copy unmaps after it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/ipc/unique_fd.hpp"

namespace kiln::service::detail {

// Why an object cannot be registered, and the request field at fault ("name" or "bytes").
struct SharedMemoryRefusal {
  std::string field;
  std::string message;  // starts with the field: "bytes: the object ... holds 4096 bytes, ..."
};

// Why a name cannot be a shared memory object's: empty when it can.
std::string shared_memory_name_problem(std::string_view name);

// One object's range mapped read-write into kilnd. Unmapped when the last holder lets go.
class SharedMemoryMapping {
 public:
  // Opens `name` (shm_open: "/name", no further '/'), checks that it is a regular object holding
  // [offset, offset + bytes) and maps that range. Throws SharedMemoryRefusal saying what is
  // wrong: a bad name, no such object, no permission, too small, not a shared memory object.
  static std::shared_ptr<SharedMemoryMapping> open(const std::string& name, std::uint64_t offset, std::uint64_t bytes);
  ~SharedMemoryMapping();
  SharedMemoryMapping(const SharedMemoryMapping&) = delete;
  SharedMemoryMapping& operator=(const SharedMemoryMapping&) = delete;

  std::byte* data() const noexcept { return data_; }  // the registered range's first byte
  std::uint64_t size() const noexcept { return bytes_; }
  // Whether the object still holds the registered range: a client that shrank it would turn
  // kilnd's next access into SIGBUS, so every copy asks first (a shrink during the copy itself
  // cannot be caught: the reason allow_client_shm is off by default).
  bool intact() const noexcept;
  // The whole mapping, page-aligned (what pinning takes).
  void* mapped() const noexcept { return base_; }
  std::size_t mapped_size() const noexcept { return mapped_bytes_; }
  // Kept here so it is released before the memory is unmapped.
  std::shared_ptr<void> pinned;

 private:
  SharedMemoryMapping() = default;
  ipc::UniqueFd fd_;
  std::uint64_t end_ = 0;  // offset + bytes in the object
  void* base_ = nullptr;
  std::size_t mapped_bytes_ = 0;
  std::byte* data_ = nullptr;
  std::uint64_t bytes_ = 0;
};

struct SharedMemoryRegion {
  std::uint64_t id = 0;
  std::string tenant;
  std::string name;
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;
  int owner_pid = 0;  // 0: none named (the region lives until unregistered)
  std::shared_ptr<SharedMemoryMapping> mapping;
};

class SharedMemoryRegions {
 public:
  // `owner` (a pidfd of owner_pid, or empty) ends the region when that process ends.
  std::uint64_t add(SharedMemoryRegion region, ipc::UniqueFd owner);
  std::optional<SharedMemoryRegion> find(std::uint64_t id, std::string_view tenant);
  std::optional<SharedMemoryRegion> remove(std::uint64_t id, std::string_view tenant);
  // The tenant's regions with ids above `after`, in id order, at most `limit`.
  std::vector<SharedMemoryRegion> list(std::string_view tenant, std::uint64_t after, std::size_t limit);
  std::size_t count(std::string_view tenant);
  // Drops the regions whose owner process has ended; how many.
  std::size_t sweep();
  void clear();

 private:
  struct Entry {
    SharedMemoryRegion region;
    ipc::UniqueFd owner;
  };
  void sweep_locked();
  std::mutex mutex_;
  std::map<std::uint64_t, Entry> regions_;
  std::uint64_t last_id_ = 0;
};

}  // namespace kiln::service::detail
