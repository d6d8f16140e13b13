// Programs and artifacts for the cache tests: numbered variants of one kernel (each its own key;
// the tests and the jit_cache_child process make the same ones), and fake artifacts of any size
// that need no NVRTC.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "kernels.hpp"
#include "kiln/jit/artifact.hpp"
#include "kiln/jit/program.hpp"

namespace kiln::jit::test_kernels {

inline Program variant(int i) {
  Program p;
  p.name = "variant.cu";
  p.source = std::string(kSaxpy) + "// variant " + std::to_string(i) + "\n";
  return p;
}

// An artifact whose key is made from `id` (not from any program) and whose image is `image_bytes`
// copies of one letter.
inline Artifact fake(int id, std::size_t image_bytes) {
  ArtifactContents c;
  c.image.assign(image_bytes, static_cast<char>('a' + id % 26));
  c.program_name = "fake" + std::to_string(id);
  c.key.bytes[0] = static_cast<std::uint8_t>(id);
  c.key.bytes[31] = 0xa5;
  return Artifact(std::move(c), Origin::compiled);
}

}  // namespace kiln::jit::test_kernels
