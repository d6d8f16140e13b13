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

KernelBuild build_kernel(jit::KernelCache& cache, const jit::Program& program, const std::set<int>& archs) {
  KernelBuild build;
  for (int arch : archs) {
    jit::CompileResult result;
    try {
      result = cache.try_compile(program, target_for_arch(arch));
    } catch (const jit::PolicyError& e) {
      build.status = 422;
      build.error = {{"code", "source_policy"}, {"message", e.detail()}, {"rule", e.rule()}};
      return build;
    }
    if (!result.ok()) {
      json diagnostics = json::array();
      for (const jit::Diagnostic& d : result.diagnostics) diagnostics.push_back(diagnostic_json(d));
      build.status = 422;
      build.error = {{"code", "compile_failed"},
                     {"message", jit::format_diagnostics(result.diagnostics)},
                     {"diagnostics", diagnostics},
                     {"target", result.target.arch_name()}};
      return build;
    }
    const jit::Artifact& artifact = *result.artifact;
    build.targets.push_back({{"arch", artifact.target().arch_name()},
                             {"kind", std::string(jit::to_string(artifact.kind()))},
                             {"origin", std::string(jit::to_string(artifact.origin()))},
                             {"compile_ms", std::chrono::duration<double, std::milli>(artifact.compile_time()).count()}});
    if (build.warnings.empty())
      for (const jit::Diagnostic& d : artifact.diagnostics()) build.warnings.push_back(diagnostic_json(d));
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
