#include "detail/kernel_build.hpp"

#include "kiln/driver/error.hpp"
#include "kiln/driver/nvrtc_api.hpp"
#include "kiln/jit/policy_error.hpp"

namespace kiln::service::detail {

using nlohmann::json;

json diagnostic_json(const jit::Diagnostic& d) {
  return {{"file", d.file},       {"line", d.line},       {"column", d.column},
          {"severity", std::string(jit::to_string(d.severity))}, {"code", d.code}, {"message", d.message}};
}

jit::Target target_for_arch(int arch) {
  const driver::NvrtcLibrary& nvrtc = driver::nvrtc_library();
  // The driver's version is the worker's business; 0 (unknown) skips the PTX alignment check here.
  return jit::Target::choose(arch, nvrtc.supported_archs, 0, nvrtc.version.as_cuda_version());
}

namespace {

std::string_view problem_name(jit::LinkProblem p) noexcept {
  switch (p) {
    case jit::LinkProblem::undefined_symbol: return "undefined_symbol";
    case jit::LinkProblem::duplicate_symbol: return "duplicate_symbol";
    case jit::LinkProblem::other: return "other";
  }
  return "other";
}

// The kernel with the headers of every library it links (its own win a name clash).
jit::Program with_library_headers(const jit::Program& program, std::span<const DeviceLibraryEntry* const> libraries,
                                  int arch) {
  jit::Program out = program;
  for (const DeviceLibraryEntry* lib : libraries)
    for (const auto& [name, text] : lib->for_arch(arch).headers()) out.headers.emplace(name, text);
  return out;
}

jit::LinkJob link_job(const jit::Program& program, const jit::Artifact& compiled, jit::KernelCache& cache,
                      std::span<const DeviceLibraryEntry* const> libraries, int arch, const jit::Target& target) {
  jit::LinkJob job;
  job.name = program.name;
  job.lowered_names = compiled.lowered_names();
  job.inputs.push_back(jit::LinkInput::from_artifact(compiled, program.name + ".ltoir"));
  for (const DeviceLibraryEntry* lib : libraries) job.inputs.push_back(lib->for_arch(arch).input_for(cache, target));
  return job;
}

// The 422 of a link nvJitLink refused, shaped like a compile error's (code compile_failed,
// diagnostics, target), with stage "link", each problem's symbol and inputs, and nvJitLink's log.
json link_error(const jit::LinkResult& linked) {
  json diagnostics = json::array(), problems = json::array();
  for (const jit::LinkDiagnostic& d : linked.diagnostics) {
    diagnostics.push_back({{"file", d.inputs.empty() ? std::string() : d.inputs.front()},
                           {"line", 0},
                           {"column", 0},
                           {"severity", std::string(jit::to_string(d.severity))},
                           {"code", std::string(problem_name(d.problem))},
                           {"message", d.symbol.empty() || d.problem == jit::LinkProblem::other
                                           ? d.message
                                           : std::string(d.problem == jit::LinkProblem::undefined_symbol ? "undefined" : "duplicate") +
                                                 " symbol '" + d.symbol + "'"}});
    problems.push_back({{"problem", std::string(problem_name(d.problem))},
                        {"symbol", d.symbol},
                        {"inputs", d.inputs},
                        {"message", d.message}});
  }
  return {{"code", "compile_failed"},
          {"stage", "link"},
          {"message", jit::format_link_diagnostics(linked.diagnostics)},
          {"diagnostics", diagnostics},
          {"link_diagnostics", problems},
          {"log", linked.log},
          {"target", linked.target.arch_name()}};
}

json compile_error(const jit::CompileResult& result) {
  json diagnostics = json::array();
  for (const jit::Diagnostic& d : result.diagnostics) diagnostics.push_back(diagnostic_json(d));
  return {{"code", "compile_failed"},
          {"message", jit::format_diagnostics(result.diagnostics)},
          {"diagnostics", diagnostics},
          {"target", result.target.arch_name()}};
}

}  // namespace

jit::Artifact build_image(jit::KernelCache& cache, const jit::Program& program, int arch,
                          std::span<const DeviceLibraryEntry* const> libraries) {
  const jit::Target target = target_for_arch(arch);
  if (libraries.empty()) return cache.compile(program, target);
  const jit::Artifact compiled =
      cache.compile(with_library_headers(program, libraries, arch), jit::Target::for_arch(arch, jit::ImageKind::ltoir));
  return cache.link(link_job(program, compiled, cache, libraries, arch, target), target);
}

KernelBuild build_kernel(jit::KernelCache& cache, const jit::Program& program, const std::set<int>& archs,
                         std::span<const DeviceLibraryEntry* const> libraries) {
  KernelBuild build;
  for (int arch : archs) {
    jit::CompileResult result;
    std::vector<jit::Diagnostic> kernel_warnings;  // NVRTC's, when the image is a link
    try {
      if (libraries.empty()) {
        result = cache.try_compile(program, target_for_arch(arch));
      } else {
        const jit::Target target = target_for_arch(arch);
        jit::CompileResult compiled = cache.try_compile(with_library_headers(program, libraries, arch),
                                                        jit::Target::for_arch(arch, jit::ImageKind::ltoir));
        if (!compiled.ok()) {
          build.status = 422;
          build.error = compile_error(compiled);
          return build;
        }
        jit::LinkResult linked = cache.try_link(link_job(program, *compiled.artifact, cache, libraries, arch, target), target);
        if (!linked.ok()) {
          build.status = 422;
          build.error = link_error(linked);
          return build;
        }
        result.artifact = std::move(linked.artifact);
        result.target = target;
        kernel_warnings = compiled.artifact->diagnostics();
      }
    } catch (const jit::PolicyError& e) {
      build.status = 422;
      build.error = {{"code", "source_policy"}, {"message", e.detail()}, {"rule", e.rule()}};
      return build;
    } catch (const Error& e) {
      // What a library brings: no nvJitLink on this node, LTO-IR of another architecture only, a
      // library source NVRTC refuses (the operator's file, not the caller's).
      if (libraries.empty()) throw;
      if (e.is(Errc::nvjitlink_not_found)) {
        build.status = 503;
        build.error = {{"code", "library_unavailable"}, {"message", e.detail().empty() ? e.what() : e.detail()},
                       {"name", std::string(e.name())}};
        return build;
      }
      if (e.is(Errc::invalid_argument)) {
        build.status = 400;
        build.error = {{"code", "bad_request"}, {"message", "libraries: " + e.detail()}, {"field", "libraries"}};
        return build;
      }
      if (e.is(Errc::compile_failed)) {
        build.status = 422;
        build.error = {{"code", "compile_failed"}, {"stage", "library"}, {"message", e.detail()},
                       {"diagnostics", json::array()}, {"target", jit::Target::for_arch(arch, jit::ImageKind::ltoir).arch_name()}};
        return build;
      }
      throw;
    }
    if (!result.ok()) {
      build.status = 422;
      build.error = compile_error(result);
      return build;
    }
    const jit::Artifact& artifact = *result.artifact;
    build.targets.push_back({{"arch", artifact.target().arch_name()},
                             {"kind", std::string(jit::to_string(artifact.kind()))},
                             {"origin", std::string(jit::to_string(artifact.origin()))},
                             {"key", artifact.key().hex()},
                             {"compile_ms", std::chrono::duration<double, std::milli>(artifact.compile_time()).count()}});
    if (build.warnings.empty())
      for (const jit::Diagnostic& d : libraries.empty() ? artifact.diagnostics() : kernel_warnings)
        build.warnings.push_back(diagnostic_json(d));
    build.images.emplace(arch, artifact);
  }
  return build;
}

JobRecord to_record(const KernelBuild& build) {
  JobRecord r;
  r["status"] = std::to_string(build.status);
  r["answer"] = json{{"error", build.error}, {"targets", build.targets}, {"warnings", build.warnings}}.dump();
  for (const auto& [arch, artifact] : build.images) r["image:" + std::to_string(arch)] = jit::serialize(artifact);
  return r;
}

KernelBuild from_record(const JobRecord& record) {
  KernelBuild build;
  auto status = record.find("status");
  auto answer = record.find("answer");
  if (status == record.end() || answer == record.end())
    throw Error(Errc::internal, "a compile job's record lacks its status or answer");
  build.status = std::stoi(status->second);
  const json a = json::parse(answer->second);
  build.error = a.at("error");
  build.targets = a.at("targets");
  build.warnings = a.at("warnings");
  for (const auto& [name, value] : record) {
    if (!name.starts_with("image:")) continue;
    build.images.emplace(std::stoi(name.substr(6)), jit::deserialize_artifact(value, jit::Origin::compiled));
  }
  if (build.ok() && build.images.empty()) throw Error(Errc::internal, "a compile job's record has no image");
  return build;
}

}  // namespace kiln::service::detail
