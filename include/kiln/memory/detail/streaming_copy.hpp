// memcpy with non-temporal (streaming) stores, for the staging engine's device-to-host copies into
// the caller's memory: a streaming store writes whole cache lines without reading them first, so
// the copy moves 2x the bytes through DRAM instead of 3x and leaves other threads' caches alone.
// (Into a staging buffer it loses: the copy engine then reads the chunk from DRAM, not cache.)
// Any alignment and size; the same bytes as memcpy. Elsewhere than x86-64 it is memcpy.
#pragma once

#include <cstddef>

namespace kiln::memory::detail {

void streaming_copy(void* dst, const void* src, std::size_t n) noexcept;

}  // namespace kiln::memory::detail
