// A stand-in for one GPU (sm_90 unless set_arch, 1 GiB, a worker up unless a test says otherwise): buffers are host
// memory (each a memfd, so that it can be exported to another process and a client's memfd imported, as CUDA IPC
// does with device memory), every launch completes at once (after the launch hook, when a test sets one) and is
// recorded. For tests of the service core and the list routes on a machine without a GPU.
//
// Thread safety: every member may be called from any thread.
#pragma once

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
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
    ipc::UniqueFd fd(::memfd_create("fake-gpu-buffer", MFD_CLOEXEC));
    if (!fd || ::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) throw Error(Errc::internal, "memfd_create failed");
    return add(std::move(fd), bytes);
  }
  std::size_t buffer_size(service::BufferId id) override {
    std::lock_guard lock(mutex_);
    return at(id).size;
  }
  void write_buffer(service::BufferId id, std::size_t offset, std::span<const std::byte> data) override {
    std::lock_guard lock(mutex_);
    if (!data.empty()) std::memcpy(at(id).data + offset, data.data(), data.size());
  }
  std::vector<std::byte> read_buffer(service::BufferId id, std::size_t offset, std::size_t bytes) override {
    std::lock_guard lock(mutex_);
    const Memory& b = at(id);
    return {b.data + offset, b.data + offset + bytes};
  }
  void free_buffer(service::BufferId id) override {
    std::lock_guard lock(mutex_);
    buffers_.erase(id);
  }
  ExportedMemory export_buffer(service::BufferId id) override {
    std::lock_guard lock(mutex_);
    const Memory& b = at(id);
    return {b.fd.duplicate(), b.size};
  }
  // A client's memfd (or any file it can map) of at least `bytes`, like cuMemImportFromShareableHandle.
  service::BufferId import_buffer(int, ipc::UniqueFd fd, std::size_t bytes, std::string_view) override {
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || static_cast<std::uint64_t>(st.st_size) < bytes)
      throw Error(Errc::invalid_argument, "the descriptor does not hold " + std::to_string(bytes) + " bytes");
    return add(std::move(fd), bytes);
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
  // A mapping of a memfd (the fake's device memory), unmapped when the buffer is freed.
  struct Memory {
    ipc::UniqueFd fd;
    std::byte* data = nullptr;
    std::size_t size = 0;
    Memory(ipc::UniqueFd f, std::size_t bytes) : fd(std::move(f)), size(bytes) {
      if (size == 0) return;
      void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
      if (p == MAP_FAILED) throw Error(Errc::invalid_argument, "the descriptor cannot be mapped");
      data = static_cast<std::byte*>(p);
    }
    ~Memory() {
      if (data) ::munmap(data, size);
    }
    Memory(const Memory&) = delete;
    Memory& operator=(const Memory&) = delete;
  };
  service::BufferId add(ipc::UniqueFd fd, std::size_t bytes) {
    auto memory = std::make_unique<Memory>(std::move(fd), bytes);
    std::lock_guard lock(mutex_);
    buffers_.emplace(next_, std::move(memory));
    return next_++;
  }
  Memory& at(service::BufferId id) {
    auto it = buffers_.find(id);
    if (it == buffers_.end()) throw Error(Errc::invalid_argument, "no buffer " + std::to_string(id));
    return *it->second;
  }
  std::atomic<bool> worker_up_{true};
  std::atomic<int> arch_{90};
  std::mutex mutex_;
  std::map<service::BufferId, std::unique_ptr<Memory>> buffers_;
  std::vector<service::LaunchSpec> launched_;
  std::function<void(const service::LaunchSpec&)> hook_;
  service::BufferId next_ = 100;
};

}  // namespace kiln::testing
