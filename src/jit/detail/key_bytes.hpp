// What a cache key is the SHA-256 of: every input that changes NVRTC's output, tagged and
// length-prefixed. KeyMemo compares these bytes to skip the digest for a program seen before.
#pragma once

#include <string_view>

#include "kiln/jit/cache_key.hpp"

namespace kiln::jit::detail {

// The bytes, in a buffer of the calling thread: valid until its next call.
std::string_view key_bytes(const Program& program, const Target& target, const KeyContext& context);

}  // namespace kiln::jit::detail
