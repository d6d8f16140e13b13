// The service benchmarks' stand-in for a GPU: one pretend sm_90 GPU whose buffers are host memory
// and whose launches complete as soon as they arrive. What a request costs over it is kilnd's own
// cost (transport, auth, parsing, the service core, the scheduler); nothing here runs a kernel.
#pragma once

#include <cstddef>
#include <cstring>
#include <map>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "kiln/service/gpu_backend.hpp"

namespace kiln::bench {

class InstantBackend final : public service::GpuBackend {
 public:
  std::vector<service::DeviceStatus> devices() override {
    service::DeviceStatus d;
    d.name = "instant backend (no GPU)";
    d.arch = 90;
    d.memory_total = std::size_t{1} << 30;
    d.memory_free = d.memory_total;
    d.worker_up = true;
    return {d};
  }
  service::BufferId create_buffer(int, std::size_t bytes, std::string_view) override {
    std::lock_guard lock(mutex_);
    buffers_[++last_].resize(bytes);
    return last_;
  }
  std::size_t buffer_size(service::BufferId id) override {
    std::lock_guard lock(mutex_);
    return buffers_.at(id).size();
  }
  void write_buffer(service::BufferId id, std::size_t offset, std::span<const std::byte> data) override {
    std::lock_guard lock(mutex_);
    std::memcpy(buffers_.at(id).data() + offset, data.data(), data.size());
  }
  std::vector<std::byte> read_buffer(service::BufferId id, std::size_t offset, std::size_t bytes) override {
    std::lock_guard lock(mutex_);
    const auto& b = buffers_.at(id);
    return {b.begin() + static_cast<std::ptrdiff_t>(offset), b.begin() + static_cast<std::ptrdiff_t>(offset + bytes)};
  }
  void free_buffer(service::BufferId id) override {
    std::lock_guard lock(mutex_);
    buffers_.erase(id);
  }
  service::LaunchResult launch(const service::LaunchSpec&) override { return {}; }

 private:
  std::mutex mutex_;
  std::map<service::BufferId, std::vector<std::byte>> buffers_;
  service::BufferId last_ = 0;
};

}  // namespace kiln::bench
