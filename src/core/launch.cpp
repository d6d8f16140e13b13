#include "kiln/core/launch.hpp"

#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::core {

using driver::check;
using driver::cuda;

namespace {

inline void make_current_for_launch(const driver::CudaApi& cu, CUcontext context) {
  CUcontext now = nullptr;
  cu.cuCtxGetCurrent(&now);
  if (now != context) check(cu.cuCtxSetCurrent(context), "cuCtxSetCurrent");
}

// The context a launch runs in: the stream's, or for a module kernel on the default stream, the
// module's. Refuses a module kernel on another context's stream.
CUcontext launch_context(const StreamRef& stream, const Kernel& kernel) {
  if (!kernel.handle()) throw Error(Errc::invalid_handle, "launch() of an empty Kernel");
  CUcontext stream_context = stream.context().handle();
  if (kernel.context_independent()) {
    if (!stream_context)
      throw Error(Errc::invalid_argument, "launch() of library kernel '" + kernel.name() +
                                              "' needs a stream that names its context");
    return stream_context;
  }
  CUcontext kernel_context = kernel.context().handle();
  if (stream_context && stream_context != kernel_context)
    throw Error(Errc::invalid_argument, "kernel '" + kernel.name() +
                                            "' belongs to another context than the stream; load it "
                                            "there, or load it as a Library to use it in every context");
  return kernel_context;
}

void launch_with_cluster(const StreamRef& stream, const Kernel& kernel, const LaunchConfig& config, void** args) {
  CUlaunchAttribute attribute{};
  attribute.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
  attribute.value.clusterDim.x = config.cluster.x;
  attribute.value.clusterDim.y = config.cluster.y;
  attribute.value.clusterDim.z = config.cluster.z;
  CUlaunchConfig c{};
  c.gridDimX = config.grid.x;
  c.gridDimY = config.grid.y;
  c.gridDimZ = config.grid.z;
  c.blockDimX = config.block.x;
  c.blockDimY = config.block.y;
  c.blockDimZ = config.block.z;
  c.sharedMemBytes = config.dynamic_shared_bytes;
  c.hStream = stream.handle();
  c.attrs = &attribute;
  c.numAttrs = 1;
  check(cuda().cuLaunchKernelEx(&c, kernel.handle(), args, nullptr), "cuLaunchKernelEx");
}

}  // namespace

void launch_packed(const StreamRef& stream, const Kernel& kernel, const LaunchConfig& config, void** arguments,
                   const std::size_t* sizes, std::size_t count) {
  kernel.check_arguments(sizes, count);
  const auto& cu = cuda();
  make_current_for_launch(cu, launch_context(stream, kernel));
  if (config.cluster.x * config.cluster.y * config.cluster.z != 1) {
    launch_with_cluster(stream, kernel, config, arguments);
    return;
  }
  check(cu.cuLaunchKernel(kernel.handle(), config.grid.x, config.grid.y, config.grid.z, config.block.x,
                          config.block.y, config.block.z, config.dynamic_shared_bytes, stream.handle(), arguments,
                          nullptr),
        "cuLaunchKernel");
}

OccupancySuggestion suggest_block_size(const Kernel& kernel, ContextRef context, std::size_t dynamic_shared_bytes,
                                       int block_size_limit) {
  const auto& cu = cuda();
  context.make_current();
  CUfunction f = kernel.handle();
  if (kernel.context_independent())
    check(cu.cuKernelGetFunction(&f, reinterpret_cast<CUkernel>(kernel.handle())), "cuKernelGetFunction");
  OccupancySuggestion s;
  check(cu.cuOccupancyMaxPotentialBlockSize(&s.min_grid_size, &s.block_size, f, nullptr, dynamic_shared_bytes,
                                            block_size_limit),
        "cuOccupancyMaxPotentialBlockSize");
  return s;
}

}  // namespace kiln::core
