// NoGpuBackend: the GpuBackend of a machine without a usable GPU (no driver, or a driver that finds
// no device). It reports no devices, and every buffer or launch call throws kiln::Error
// (Errc::driver_not_found) whose message starts "no GPU on this machine" and says why, so the
// gateway answers 503 while registration, auth, limits and metrics keep working.
//
// Thread safety: immutable; every member may be called from any thread.
#pragma once

#include <string>

#include "kiln/service/gpu_backend.hpp"

namespace kiln::service {

class NoGpuBackend final : public GpuBackend {
 public:
  // `reason`: why there is no GPU (e.g. the driver loader's message).
  explicit NoGpuBackend(std::string reason);
  const std::string& reason() const noexcept { return reason_; }
  std::string unavailable_reason() override { return reason_; }

  std::vector<DeviceStatus> devices() override { return {}; }
  BufferId create_buffer(int device, std::size_t bytes, std::string_view tag) override;
  std::size_t buffer_size(BufferId id) override;
  void write_buffer(BufferId id, std::size_t offset, std::span<const std::byte> data) override;
  std::vector<std::byte> read_buffer(BufferId id, std::size_t offset, std::size_t bytes) override;
  void free_buffer(BufferId id) override;
  LaunchResult launch(const LaunchSpec& spec) override;

 private:
  [[noreturn]] void refuse(std::string_view what) const;
  std::string reason_;
};

// The backend for a machine without a GPU, with the reason the driver layer gives (no driver, or
// no device).
std::unique_ptr<GpuBackend> make_no_gpu_backend();
// Why this machine has no usable GPU; empty when the driver loads and finds at least one.
std::string why_no_gpu();

}  // namespace kiln::service
