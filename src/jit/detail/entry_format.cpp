#include "jit/detail/entry_format.hpp"

#include <cstring>

#include "jit/detail/byte_io.hpp"
#include "jit/detail/sha256.hpp"

namespace kiln::jit::detail {

std::string encode_entry(const Artifact& artifact) {
  std::string payload;
  put<std::uint8_t>(payload, static_cast<std::uint8_t>(artifact.kind()));
  put<std::int32_t>(payload, artifact.arch());
  put<std::int64_t>(payload, artifact.compile_time().count());
  put_string(payload, artifact.program_name());
  put_string(payload, artifact.image());
  put<std::uint64_t>(payload, artifact.lowered_names().size());
  for (const auto& [expr, lowered] : artifact.lowered_names()) {
    put_string(payload, expr);
    put_string(payload, lowered);
  }
  put_string(payload, artifact.log());

  std::string out;
  out.reserve(kEntryHeaderSize + payload.size());
  out.append(kEntryMagic);
  put<std::uint32_t>(out, kCacheFormatVersion);
  put<std::uint32_t>(out, kEntryHeaderSize);
  out.append(reinterpret_cast<const char*>(artifact.key().bytes.data()), artifact.key().bytes.size());
  put<std::uint64_t>(out, payload.size());
  Digest checksum = sha256(payload);
  out.append(reinterpret_cast<const char*>(checksum.data()), checksum.size());
  out.append(payload);
  return out;
}

std::optional<ArtifactContents> decode_entry(std::string_view bytes, const CacheKey& expected, std::string& why) {
  if (bytes.size() < kEntryHeaderSize) {
    why = "truncated: " + std::to_string(bytes.size()) + " bytes, shorter than the header";
    return std::nullopt;
  }
  if (bytes.substr(0, 8) != kEntryMagic) {
    why = "wrong magic: not a kiln cache entry";
    return std::nullopt;
  }
  ByteReader header(bytes.substr(8, kEntryHeaderSize - 8));
  auto version = header.get<std::uint32_t>();
  auto header_size = header.get<std::uint32_t>();
  if (version != kCacheFormatVersion || header_size != kEntryHeaderSize) {
    why = "format version " + std::to_string(version) + ", expected " + std::to_string(kCacheFormatVersion);
    return std::nullopt;
  }
  if (std::memcmp(bytes.data() + 16, expected.bytes.data(), expected.bytes.size()) != 0) {
    why = "holds another key than its file name says";
    return std::nullopt;
  }
  std::uint64_t payload_size = 0;
  std::memcpy(&payload_size, bytes.data() + 48, sizeof payload_size);
  std::string_view payload = bytes.substr(kEntryHeaderSize);
  if (payload.size() != payload_size) {
    why = (payload.size() < payload_size ? "truncated: payload has " : "oversized: payload has ") +
          std::to_string(payload.size()) + " of " + std::to_string(payload_size) + " bytes";
    return std::nullopt;
  }
  Digest checksum = sha256(payload);
  if (std::memcmp(bytes.data() + 56, checksum.data(), checksum.size()) != 0) {
    why = "checksum mismatch: the payload was modified or damaged";
    return std::nullopt;
  }

  ByteReader r(payload);
  ArtifactContents c;
  auto kind = r.get<std::uint8_t>();
  c.kind = static_cast<ImageKind>(kind);
  c.arch = r.get<std::int32_t>();
  c.compile_time = std::chrono::nanoseconds(r.get<std::int64_t>());
  c.program_name = r.get_string();
  c.image = r.get_string();
  auto names = r.get_count(16);  // two length-prefixed strings each
  for (std::uint64_t i = 0; i < names && !r.bad(); ++i) {
    std::string expr = r.get_string();
    c.lowered_names.emplace(std::move(expr), r.get_string());
  }
  c.log = r.get_string();
  if (!r.ok_and_done() || kind > kLastImageKind) {
    why = "malformed payload";
    return std::nullopt;
  }
  c.key = expected;
  return c;
}

}  // namespace kiln::jit::detail
