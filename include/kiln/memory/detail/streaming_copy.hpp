// memcpy with non-temporal (streaming) stores, for the staging engine's large chunk copies: a
// streaming store writes whole cache lines without reading them first, so a copy into memory that
// the CPU will not read again soon (a staging buffer the copy engine drains, or the caller's
// buffer after device-to-host) moves 2x the bytes through DRAM instead of 3x, and does not evict
// the caches of other threads. Any alignment and size; the same bytes as memcpy.
#pragma once

#include <cstddef>

namespace kiln::memory::detail {

void streaming_copy(void* dst, const void* src, std::size_t n) noexcept;

// Whether this CPU has a streaming store path (x86-64: always; elsewhere streaming_copy is memcpy).
bool has_streaming_stores() noexcept;

}  // namespace kiln::memory::detail
