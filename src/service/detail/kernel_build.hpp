// Compiling a registered kernel for every architecture the node's GPUs have, and the answer the
// API gives for it. One function for both paths: a node compiling its own registration, and a node
// compiling one that came through the shared queue (the answer then travels back as a job record).
//
// Thread safety: build_kernel may be called from any thread (the cache is thread-safe).
#pragma once

#include <map>
#include <set>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "kiln/jit/artifact.hpp"
#include "kiln/jit/kernel_cache.hpp"
#include "kiln/jit/program.hpp"
#include "detail/device_libraries.hpp"
#include "kiln/service/redis_stream_queue.hpp"

namespace kiln::service::detail {

struct KernelBuild {
  // 201; 422 for a compile or link error or a source policy refusal; 400 for a library that cannot
  // link into an architecture; 503 (library_unavailable) without nvJitLink.
  int status = 201;
  nlohmann::json error;      // when status is not 201: {code, message, ...details}
  nlohmann::json targets = nlohmann::json::array();
  nlohmann::json warnings = nlohmann::json::array();
  std::map<int, jit::Artifact> images;  // by architecture

  bool ok() const noexcept { return status == 201; }
};

// The target kilnd compiles for on a GPU of `arch` (CUBIN when NVRTC lists it, else PTX).
jit::Target target_for_arch(int arch);

// Compiles `program` for each architecture through the cache. With `libraries`, the program is
// compiled to LTO-IR (the libraries' headers added to its own) and linked with each library's LTO-IR
// for the architecture (nvJitLink, through the cache: a second registration is a memory hit, a new
// process finds the link on disk). Errors other than compile and link errors, policy refusals, a
// library without LTO-IR for an architecture and a missing nvJitLink propagate as kiln::Error.
KernelBuild build_kernel(jit::KernelCache& cache, const jit::Program& program, const std::set<int>& archs,
                         std::span<const DeviceLibraryEntry* const> libraries = {});

// One architecture's image of a registered kernel (compiled, or compiled and linked with
// `libraries`): what a launch on a GPU of an architecture that came up after registration needs.
// Throws kiln::Error (Errc::compile_failed, Errc::link_failed, ...).
jit::Artifact build_image(jit::KernelCache& cache, const jit::Program& program, int arch,
                          std::span<const DeviceLibraryEntry* const> libraries = {});

// A build as the fields of a shared-queue job record, and back.
JobRecord to_record(const KernelBuild& build);
KernelBuild from_record(const JobRecord& record);  // throws kiln::Error for a damaged record

nlohmann::json diagnostic_json(const jit::Diagnostic& d);

}  // namespace kiln::service::detail
