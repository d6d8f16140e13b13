// The buffers tenants created: backend id -> owner, device and size; bytes per device and tenant
// for admission and the metrics. A tenant sees only its own: find() answers "absent" for another's.
//
// Thread safety: every member may be called from any thread (a shared_mutex: lookups on every
// launch and transfer run side by side).
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "kiln/service/gpu_backend.hpp"

namespace kiln::service::detail {

struct BufferRecord {
  BufferId id = 0;
  std::string tenant;
  int device = 0;
  std::uint64_t bytes = 0;
  std::string tag;
  // A co-located client's device memory (imported over the IPC socket), and the process that
  // registered it (the buffer is dropped when it ends); kilnd's own otherwise.
  bool imported = false;
  int owner_pid = 0;
};

class BufferRegistry {
 public:
  void add(BufferRecord record) {
    std::unique_lock lock(mutex_);
    by_device_[record.device] += record.bytes;
    by_tenant_[record.tenant] += record.bytes;
    buffers_.emplace(record.id, std::move(record));
  }
  std::optional<BufferRecord> find(BufferId id, std::string_view tenant) const {
    std::shared_lock lock(mutex_);
    auto it = buffers_.find(id);
    if (it == buffers_.end() || it->second.tenant != tenant) return std::nullopt;
    return it->second;
  }
  std::optional<BufferRecord> remove(BufferId id, std::string_view tenant) {
    std::unique_lock lock(mutex_);
    auto it = buffers_.find(id);
    if (it == buffers_.end() || it->second.tenant != tenant) return std::nullopt;
    BufferRecord record = std::move(it->second);
    buffers_.erase(it);
    if ((by_device_[record.device] -= record.bytes) == 0) by_device_.erase(record.device);
    if ((by_tenant_[record.tenant] -= record.bytes) == 0) by_tenant_.erase(record.tenant);
    return record;
  }
  // The tenant's buffers with ids above `after`, in increasing id order, at most `limit`.
  std::vector<BufferRecord> list(std::string_view tenant, BufferId after, std::size_t limit) const {
    std::vector<BufferRecord> out;
    {
      std::shared_lock lock(mutex_);
      for (const auto& [id, record] : buffers_)
        if (id > after && record.tenant == tenant) out.push_back(record);
    }
    std::sort(out.begin(), out.end(), [](const BufferRecord& a, const BufferRecord& b) { return a.id < b.id; });
    if (out.size() > limit) out.resize(limit);
    return out;
  }
  // Every record, removed (shutdown frees them all).
  std::vector<BufferRecord> take_all() {
    std::unique_lock lock(mutex_);
    std::vector<BufferRecord> out;
    for (auto& [id, record] : buffers_) out.push_back(std::move(record));
    buffers_.clear();
    by_device_.clear();
    by_tenant_.clear();
    return out;
  }
  std::uint64_t bytes_on(int device) const {
    std::shared_lock lock(mutex_);
    auto it = by_device_.find(device);
    return it == by_device_.end() ? 0 : it->second;
  }
  std::map<int, std::uint64_t> bytes_by_device() const {
    std::shared_lock lock(mutex_);
    return by_device_;
  }
  std::map<std::string, std::uint64_t> bytes_by_tenant() const {
    std::shared_lock lock(mutex_);
    return by_tenant_;
  }

 private:
  mutable std::shared_mutex mutex_;
  std::unordered_map<BufferId, BufferRecord> buffers_;
  std::map<int, std::uint64_t> by_device_;
  std::map<std::string, std::uint64_t> by_tenant_;
};

}  // namespace kiln::service::detail
