// A stand-in for one GPU (sm_90 unless set_arch, 1 GiB, a worker up unless a test says otherwise): buffers are host
// bytes, every launch completes at once (after the launch hook, when a test sets one) and is recorded. For tests of the service core and the list routes on a machine without a GPU.
//
// Thread safety: every member may be called from any thread.
#pragma once

#include <atomic>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <vector>

#include "kiln/driver/error.hpp"
#include "kiln/service/gpu_backend.hpp"

namespace kiln::testing {

class FakeGpu final : public service::GpuBackend {
 public:
  std::vector<service::DeviceStatus> devices() override {
    service::DeviceStatus d;
    d.name = "fake GPU";
    d.arch = arch_.load();
    d.memory_total = d.memory_free = std::size_t{1} << 30;
    d.worker_up = worker_up_.load();
    if (!d.worker_up) d.last_failure = "the worker exited with signal 9 (Killed)";
    return {d};
  }
  // The GPU replaced by one of another architecture (a kernel needs a new image for it).
  void set_arch(int arch) { arch_.store(arch); }
  // A GPU whose worker died (and has not been replaced yet).
  void set_worker_up(bool up) { worker_up_.store(up); }
  service::BufferId create_buffer(int, std::size_t bytes, std::string_view) override {
    std::lock_guard lock(mutex_);
    buffers_[next_].assign(bytes, std::byte{0});
    return next_++;
  }
  std::size_t buffer_size(service::BufferId id) override {
    std::lock_guard lock(mutex_);
    return at(id).size();
  }
  void write_buffer(service::BufferId id, std::size_t offset, std::span<const std::byte> data) override {
    std::lock_guard lock(mutex_);
    if (!data.empty()) std::memcpy(at(id).data() + offset, data.data(), data.size());
  }
  std::vector<std::byte> read_buffer(service::BufferId id, std::size_t offset, std::size_t bytes) override {
    std::lock_guard lock(mutex_);
    auto& b = at(id);
    return {b.begin() + static_cast<std::ptrdiff_t>(offset), b.begin() + static_cast<std::ptrdiff_t>(offset + bytes)};
  }
  void free_buffer(service::BufferId id) override {
    std::lock_guard lock(mutex_);
    buffers_.erase(id);
  }
  service::LaunchResult launch(const service::LaunchSpec& spec) override {
    std::function<void(const service::LaunchSpec&)> hook;
    {
      std::lock_guard lock(mutex_);
      launched_.push_back(spec);
      hook = hook_;
    }
    if (hook) hook(spec);
    return {};
  }
  // Runs in each launch before it completes (a test holds a launch in flight with it).
  void set_launch_hook(std::function<void(const service::LaunchSpec&)> hook) {
    std::lock_guard lock(mutex_);
    hook_ = std::move(hook);
  }
  std::vector<service::LaunchSpec> launched() {
    std::lock_guard lock(mutex_);
    return launched_;
  }

  std::size_t buffers() {
    std::lock_guard lock(mutex_);
    return buffers_.size();
  }

 private:
  std::vector<std::byte>& at(service::BufferId id) {
    auto it = buffers_.find(id);
    if (it == buffers_.end()) throw Error(Errc::invalid_argument, "no buffer " + std::to_string(id));
    return it->second;
  }
  std::atomic<bool> worker_up_{true};
  std::atomic<int> arch_{90};
  std::mutex mutex_;
  std::map<service::BufferId, std::vector<std::byte>> buffers_;
  std::vector<service::LaunchSpec> launched_;
  std::function<void(const service::LaunchSpec&)> hook_;
  service::BufferId next_ = 100;
};

}  // namespace kiln::testing
