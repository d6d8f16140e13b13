#include "kiln/service/gpu_backend.hpp"

#include "kiln/driver/error.hpp"

namespace kiln::service {

GpuBackend::ExportedMemory GpuBackend::export_buffer(BufferId) {
  throw Error(Errc::invalid_argument, "this GPU backend cannot share its buffers with other processes");
}

BufferId GpuBackend::import_buffer(int, ipc::UniqueFd, std::size_t, std::string_view) {
  throw Error(Errc::invalid_argument, "this GPU backend cannot map another process's memory");
}

}  // namespace kiln::service
