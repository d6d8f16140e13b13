// Type-checked kernel launches.
//
// launch(stream, kernel, config, args...) checks the arguments against the kernel's real parameter
// list (count and size of each, read once when the Kernel was made) and refuses a mismatch before
// anything is launched. Then it makes the right context current if it is not, and makes one driver
// call. No lock, no allocation, no push/pop.
//
// Thread safety: launch() may be called from any number of threads at once, on the same or on
// different streams and kernels.
#pragma once

#include <cuda.h>

#include <array>
#include <cstddef>
#include <tuple>
#include <type_traits>

#include "kiln/core/module.hpp"
#include "kiln/core/stream.hpp"

namespace kiln::core {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr Dim3() = default;
  constexpr Dim3(unsigned x_, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

struct LaunchConfig {
  Dim3 grid;
  Dim3 block;
  unsigned dynamic_shared_bytes = 0;
  Dim3 cluster;  // thread-block cluster dimensions (sm_90+); {1,1,1} means none

  static constexpr LaunchConfig of(Dim3 grid, Dim3 block, unsigned dynamic_shared_bytes = 0) {
    LaunchConfig c;
    c.grid = grid;
    c.block = block;
    c.dynamic_shared_bytes = dynamic_shared_bytes;
    return c;
  }
  // Enough blocks of `block_size` threads to cover `n` elements.
  static constexpr LaunchConfig cover(std::size_t n, unsigned block_size) {
    LaunchConfig c;
    c.block = Dim3(block_size);
    c.grid = Dim3(static_cast<unsigned>((n + block_size - 1) / block_size));
    return c;
  }
};

// What launch() passes for an argument: the value itself (trivially copyable), or, for kiln's
// buffer types, what their kernel_argument() returns (the device pointer).
template <typename T>
auto kernel_argument(const T& value) {
  if constexpr (requires { value.kernel_argument(); }) {
    return value.kernel_argument();
  } else {
    static_assert(std::is_trivially_copyable_v<T>, "kernel arguments must be trivially copyable");
    return value;
  }
}

// Block size with the best occupancy for `kernel` (cuOccupancyMaxPotentialBlockSize), and the
// smallest grid that reaches it.
struct OccupancySuggestion {
  int min_grid_size = 0;
  int block_size = 0;
};
OccupancySuggestion suggest_block_size(const Kernel& kernel, ContextRef context,
                                       std::size_t dynamic_shared_bytes = 0, int block_size_limit = 0);

// A launch whose argument list is known only at run time (a service's request): `arguments[i]`
// points at `sizes[i]` bytes. Checked against the kernel's parameters exactly as launch() is.
void launch_packed(const StreamRef& stream, const Kernel& kernel, const LaunchConfig& config, void** arguments,
                   const std::size_t* sizes, std::size_t count);

template <typename... Args>
void launch(const StreamRef& stream, const Kernel& kernel, const LaunchConfig& config, const Args&... args) {
  auto values = std::tuple<decltype(kernel_argument(args))...>(kernel_argument(args)...);
  constexpr std::size_t n = sizeof...(Args);
  static constexpr std::array<std::size_t, (n > 0 ? n : 1)> sizes = {sizeof(decltype(kernel_argument(args)))...};
  std::array<void*, (n > 0 ? n : 1)> pointers{};
  std::apply([&pointers](auto&... v) {
    std::size_t i = 0;
    ((pointers[i++] = static_cast<void*>(&v)), ...);
  }, values);
  launch_packed(stream, kernel, config, pointers.data(), sizes.data(), n);
}

}  // namespace kiln::core
