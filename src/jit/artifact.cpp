#include "kiln/jit/artifact.hpp"

#include <algorithm>

#include "jit/detail/entry_format.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::jit {

std::string_view to_string(Origin origin) noexcept {
  switch (origin) {
    case Origin::compiled: return "compiled";
    case Origin::memory: return "memory";
    case Origin::disk: return "disk";
  }
  return "compiled";
}

Artifact::Artifact(ArtifactContents contents, Origin origin)
    : contents_(std::make_shared<const ArtifactContents>(std::move(contents))), origin_(origin) {}

const ArtifactContents& Artifact::get() const {
  if (!contents_) throw Error(Errc::invalid_handle, "use of an empty jit::Artifact");
  return *contents_;
}

const std::string& Artifact::lowered_name(std::string_view name_expression) const {
  const auto& names = get().lowered_names;
  auto it = names.find(std::string(name_expression));
  if (it == names.end())
    throw Error(Errc::invalid_argument, "name expression '" + std::string(name_expression) +
                                            "' was not among those given to program '" + get().program_name + "'");
  return it->second;
}

std::shared_ptr<const std::string> Artifact::shared_image() const {
  const ArtifactContents& c = get();
  return std::shared_ptr<const std::string>(contents_, &c.image);
}

Artifact Artifact::with_origin(Origin origin) const {
  Artifact copy = *this;
  copy.origin_ = origin;
  return copy;
}

std::size_t Artifact::footprint() const {
  const auto& c = get();
  std::size_t bytes = sizeof(ArtifactContents) + c.image.size() + c.log.size() + c.program_name.size();
  for (const auto& [expr, lowered] : c.lowered_names) bytes += expr.size() + lowered.size() + 64;
  for (const auto& d : c.diagnostics) bytes += sizeof(Diagnostic) + d.message.size() + d.source_line.size();
  return bytes;
}

std::string serialize(const Artifact& artifact) { return detail::encode_entry(artifact); }

Artifact deserialize_artifact(std::string_view bytes, Origin origin) {
  constexpr std::size_t kKeyOffset = 16;  // the entry header's key (entry_format.hpp)
  CacheKey key;
  if (bytes.size() >= kKeyOffset + key.bytes.size())
    std::copy_n(reinterpret_cast<const std::uint8_t*>(bytes.data()) + kKeyOffset, key.bytes.size(), key.bytes.begin());
  std::string why;
  std::optional<ArtifactContents> contents = detail::decode_entry(bytes, key, why);
  if (!contents) throw Error(Errc::invalid_argument, "not a serialized jit::Artifact: " + why);
  return Artifact(std::move(*contents), origin);
}

}  // namespace kiln::jit
