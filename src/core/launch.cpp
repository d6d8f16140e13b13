#include "kiln/core/launch.hpp"

#include "kiln/driver/error.hpp"

namespace kiln::core {

using driver::check;
using driver::cuda;

namespace detail {

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

}  // namespace detail

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
