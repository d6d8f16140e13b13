#include "kiln/jit/device_library.hpp"

#include <fstream>
#include <sstream>

namespace kiln::jit {

DeviceLibrary DeviceLibrary::from_program(Program program, std::map<std::string, std::string> headers) {
  DeviceLibrary lib;
  lib.name_ = program.name;
  lib.program_ = std::move(program);
  lib.headers_ = std::move(headers);
  return lib;
}

DeviceLibrary DeviceLibrary::from_ltoir(std::string name, int arch, std::string ltoir,
                                        std::map<std::string, std::string> headers) {
  if (arch <= 0) throw Error(Errc::invalid_argument, "device library '" + name + "': architecture " + std::to_string(arch));
  DeviceLibrary lib;
  lib.name_ = name;
  lib.prebuilt_ = LinkInput::from_bytes(LinkInputKind::ltoir, std::move(name), std::move(ltoir));
  lib.prebuilt_arch_ = arch;
  lib.headers_ = std::move(headers);
  return lib;
}

DeviceLibrary DeviceLibrary::from_ltoir_file(const std::filesystem::path& file, int arch,
                                             std::map<std::string, std::string> headers) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(Errc::invalid_argument, "cannot read device library '" + file.string() + "'");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return from_ltoir(file.filename().string(), arch, std::move(bytes).str(), std::move(headers));
}

LinkInput DeviceLibrary::input_for(KernelCache& cache, const Target& target) const {
  if (prebuilt_) {
    if (prebuilt_arch_ != target.arch)
      throw Error(Errc::invalid_argument, "device library '" + name_ + "' is LTO-IR for sm_" +
                                              std::to_string(prebuilt_arch_) + "; it cannot link into sm_" +
                                              std::to_string(target.arch) + " (build it for that architecture, "
                                              "or give its source)");
    return *prebuilt_;
  }
  Program program = *program_;
  for (const auto& [name, text] : headers_) program.headers.emplace(name, text);  // its own declarations
  return LinkInput::from_artifact(cache.compile(program, Target::for_arch(target.arch, ImageKind::ltoir)),
                                  name_ + ".ltoir");
}

Artifact compile_and_link(KernelCache& cache, const Program& kernel, std::span<const DeviceLibrary> libraries,
                          const Target& target, const LinkOptions& options) {
  Program program = kernel;
  for (const DeviceLibrary& lib : libraries)
    for (const auto& [name, text] : lib.headers()) program.headers.emplace(name, text);
  const Artifact compiled = cache.compile(program, Target::for_arch(target.arch, ImageKind::ltoir));

  LinkJob job;
  job.name = kernel.name;
  job.options = options;
  job.lowered_names = compiled.lowered_names();
  job.inputs.push_back(LinkInput::from_artifact(compiled, kernel.name + ".ltoir"));
  for (const DeviceLibrary& lib : libraries) job.inputs.push_back(lib.input_for(cache, target));
  return cache.link(job, target);
}

}  // namespace kiln::jit
