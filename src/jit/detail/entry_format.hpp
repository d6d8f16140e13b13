// The on-disk layout of one cache entry: a fixed 88-byte header, then the payload.
//
//   offset size  field
//        0    8  magic "\x7fKILNJIT"
//        8    4  format version (kCacheFormatVersion), little-endian
//       12    4  header size (88)
//       16   32  cache key
//       48    8  payload length
//       56   32  SHA-256 of the payload
//       88    …  payload: kind, arch, compile time, program name, image, lowered names, log
//
// Thread safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "kiln/jit/artifact.hpp"
#include "kiln/jit/cache_key.hpp"

namespace kiln::jit::detail {

inline constexpr std::size_t kEntryHeaderSize = 88;
inline constexpr std::string_view kEntryMagic{"\x7fKILNJIT", 8};

std::string encode_entry(const Artifact& artifact);

// The contents, or nullopt with `why` saying what is wrong (truncated, wrong magic, other key,
// checksum mismatch, malformed payload). Nothing of a damaged entry is ever returned.
std::optional<ArtifactContents> decode_entry(std::string_view bytes, const CacheKey& expected, std::string& why);

}  // namespace kiln::jit::detail
