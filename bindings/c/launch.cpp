// Checked launches from a packed argument block: the hot path of every binding.
#include <array>

#include "c/detail/boundary.hpp"
#include "c/detail/handles.hpp"
#include "kiln/core/launch.hpp"

using namespace kiln;

namespace {

constexpr std::size_t round_up(std::size_t n) {
  return (n + KILN_ARGUMENT_ALIGNMENT - 1) / KILN_ARGUMENT_ALIGNMENT * KILN_ARGUMENT_ALIGNMENT;
}

unsigned at_least_one(unsigned n) { return n == 0 ? 1 : n; }

[[noreturn]] void refuse_device(const kiln_kernel& k, const kiln_stream& s) {
  throw Error(Errc::invalid_argument, "kiln_launch: kernel " + k.kernel.name() + " was loaded on device " +
                                          std::to_string(k.device) + " but the stream belongs to device " +
                                          std::to_string(s.device) + ": load the image on that device too");
}

// launch_packed checks the count and every size against the kernel before the driver reads a byte.
void launch(const kiln_kernel& k, const kiln_stream& s, const kiln_launch_config& config, const void* arguments,
            const size_t* sizes, std::size_t count, void** pointers) {
  const auto* base = static_cast<const unsigned char*>(arguments);
  std::size_t offset = 0;
  for (std::size_t i = 0; i < count; ++i) {
    pointers[i] = const_cast<unsigned char*>(base + offset);
    offset += round_up(sizes[i]);
  }
  core::LaunchConfig c;
  c.grid = core::Dim3(at_least_one(config.grid[0]), at_least_one(config.grid[1]), at_least_one(config.grid[2]));
  c.block = core::Dim3(at_least_one(config.block[0]), at_least_one(config.block[1]), at_least_one(config.block[2]));
  c.dynamic_shared_bytes = config.dynamic_shared_bytes;
  if (KILN_C_HAS(config, cluster))
    c.cluster =
        core::Dim3(at_least_one(config.cluster[0]), at_least_one(config.cluster[1]), at_least_one(config.cluster[2]));
  core::launch_packed(s.ref, k.kernel, c, pointers, sizes, count);
}

}  // namespace

extern "C" {

kiln_status kiln_launch(const kiln_kernel* kernel, kiln_stream* stream, const kiln_launch_config* config,
                        const void* arguments, const size_t* sizes, size_t count, kiln_error* error) {
  return c::guarded(error, "kiln_launch", [&] {
    const kiln_kernel& k = c::need(kernel, "kiln_launch", "kernel");
    const kiln_stream& s = c::need(stream, "kiln_launch", "stream");
    const kiln_launch_config& cfg = *c::need_pointer(config, "kiln_launch", "config");
    if (!KILN_C_HAS(cfg, dynamic_shared_bytes)) [[unlikely]]
      throw Error(Errc::invalid_argument, "kiln_launch: config->size is " + std::to_string(cfg.size) +
                                              ": set it to sizeof(kiln_launch_config)");
    if (count > 0) {
      c::need_pointer(arguments, "kiln_launch", "arguments");
      c::need_pointer(sizes, "kiln_launch", "sizes");
    }
    if (k.device != s.device) [[unlikely]]
      refuse_device(k, s);
    constexpr std::size_t kOnStack = 64;
    if (count <= kOnStack) {
      std::array<void*, kOnStack> pointers;
      launch(k, s, cfg, arguments, sizes, count, pointers.data());
    } else {
      std::vector<void*> pointers(count);
      launch(k, s, cfg, arguments, sizes, count, pointers.data());
    }
  });
}

}  // extern "C"
