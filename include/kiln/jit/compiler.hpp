// jit::compile: one NVRTC compile of a Program for a Target, without any cache. The toolkit's
// include folder and its CCCL folder (CUDA 13 keeps CUB, Thrust and libcu++ in include/cccl) are
// added after the program's own folders, so `#include <cub/block/block_reduce.cuh>` needs no flag.
//
// Thread safety: compile() may run on many threads at once (each uses its own nvrtcProgram).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "kiln/driver/error.hpp"
#include "kiln/jit/artifact.hpp"
#include "kiln/jit/diagnostics.hpp"
#include "kiln/jit/program.hpp"
#include "kiln/jit/target.hpp"

namespace kiln::jit {

// A compile that NVRTC accepted (artifact set) or rejected (artifact empty; diagnostics say why).
struct CompileResult {
  std::optional<Artifact> artifact;
  std::vector<Diagnostic> diagnostics;
  std::string log;
  std::string program_name;
  Target target;

  bool ok() const noexcept { return artifact.has_value(); }
  // The artifact, or kiln::Error (Errc::compile_failed) whose detail holds the diagnostics
  // formatted like a compiler's (`kernel.cu:12:5: error: ...`, source line, caret).
  const Artifact& value() const;
  Error error() const;  // the error value() would throw; requires !ok()
};

// Settings that change how NVRTC works but not what it produces; not part of the cache key.
struct CompileSettings {
  // NVRTC automatic precompiled headers (-pch) kept in this folder; empty: no PCH.
  std::string pch_dir;
  // The key recorded in the artifact, when the caller computed it already; else computed here.
  std::optional<CacheKey> key;
};

// Compiles with NVRTC. A rejected program is a CompileResult with !ok(); kiln::Error is thrown
// for what is not the program's fault to diagnose: NUL bytes in source or headers (NVRTC would
// silently drop what follows), malformed options, NVRTC missing or failing internally.
CompileResult compile(const Program& program, const Target& target, const CompileSettings& settings = {});

// The automatic include folders: <toolkit>/include and <toolkit>/include/cccl, from $CUDA_HOME,
// $CUDA_PATH, the toolkit kiln was built with, or the folder NVRTC was loaded from (first root
// holding include/cuda.h wins). Empty when none is found. Computed once per process.
const std::vector<std::string>& toolkit_include_dirs();

}  // namespace kiln::jit
