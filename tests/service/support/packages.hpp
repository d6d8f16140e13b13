// Kernel packages for the repository tests, built by the real jit::pack (NVRTC) into a folder laid
// out as kilnd serves it: <repository>/<name>/<version>/. Version N of "stamp" writes N into every
// element of its buffer, so a result tells which version computed it.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "kiln/jit/kernel_cache.hpp"
#include "kiln/jit/package.hpp"

namespace kiln::testing {

inline constexpr const char* kStampSource = R"(
extern "C" __global__ void stamp(unsigned* out, unsigned n) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = STAMP_VERSION;
}
extern "C" __global__ void add(unsigned* out, unsigned value, unsigned n) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] += value;
}
)";

// Packs version `version` of `name` into `repository` (through `cache`) for `targets` ("sm_90",
// "compute_80", ...), and returns its folder.
inline std::filesystem::path pack_stamp(jit::KernelCache& cache, const std::filesystem::path& repository,
                                        const std::string& name, std::uint64_t version,
                                        std::vector<std::string> targets = {"sm_90"}, bool include_source = false,
                                        std::vector<std::string> tenants = {}) {
  jit::PackRequest r;
  r.name = name;
  r.version = version;
  r.description = "writes its version into every element";
  r.program.name = "stamp.cu";
  r.program.source = kStampSource;
  r.program.options.defines = {"STAMP_VERSION=" + std::to_string(version) + "u"};
  using P = jit::ParameterType;
  r.entry_points = {{"stamp", "", {P::pointer, P::u32}}, {"add", "", {P::pointer, P::u32, P::u32}}};
  for (const std::string& t : targets) r.targets.push_back(jit::Target::parse(t));
  r.include_source = include_source;
  r.tenants = std::move(tenants);
  r.parallel = 2;
  const std::filesystem::path out = repository / name / std::to_string(version);
  std::filesystem::create_directories(out.parent_path());
  jit::pack(r, cache, out);
  return out;
}

}  // namespace kiln::testing
