#include "kiln/service/no_gpu_backend.hpp"

#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::service {

NoGpuBackend::NoGpuBackend(std::string reason) : reason_(std::move(reason)) {}

void NoGpuBackend::refuse(std::string_view what) const {
  throw Error(Errc::driver_not_found, "no GPU on this machine, so kilnd cannot " + std::string(what) + ": " + reason_);
}

BufferId NoGpuBackend::create_buffer(int device, std::size_t bytes, std::string_view) {
  refuse("create a buffer of " + std::to_string(bytes) + " bytes on device " + std::to_string(device));
}
std::size_t NoGpuBackend::buffer_size(BufferId id) { refuse("read the size of buffer " + std::to_string(id)); }
void NoGpuBackend::write_buffer(BufferId id, std::size_t, std::span<const std::byte>) {
  refuse("write buffer " + std::to_string(id));
}
std::vector<std::byte> NoGpuBackend::read_buffer(BufferId id, std::size_t, std::size_t) {
  refuse("read buffer " + std::to_string(id));
}
void NoGpuBackend::free_buffer(BufferId id) { refuse("free buffer " + std::to_string(id)); }
LaunchResult NoGpuBackend::launch(const LaunchSpec& spec) { refuse("launch '" + spec.kernel + "'"); }

std::string why_no_gpu() {
  try {
    const driver::CudaApi& cu = driver::cuda();
    int count = 0;
    driver::check(cu.cuDeviceGetCount(&count), "cuDeviceGetCount");
    if (count == 0) return "the NVIDIA driver is loaded but reports no GPU";
    return {};
  } catch (const Error& e) {
    return e.what();
  }
}

std::unique_ptr<GpuBackend> make_no_gpu_backend() {
  std::string why = why_no_gpu();
  if (why.empty()) why = "a GPU is present, but this kilnd was started without GPU workers";
  return std::make_unique<NoGpuBackend>(std::move(why));
}

}  // namespace kiln::service
