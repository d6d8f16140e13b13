// jit::DeviceLibrary: a set of device functions compiled once to LTO-IR and linked into many small
// kernels, so that a new kernel calling into a big library compiles only its own few lines (NVRTC)
// and then links (nvJitLink, -lto: the library's functions still inline into it).
//
// A library is either source, compiled to LTO-IR at first use for each architecture through the
// KernelCache (so once per machine, with the disk tier), or LTO-IR built ahead of time (`kiln compile
// --lto lib.cu -o lib.ltoir`) for one architecture. Its headers (the declarations kernels call) are
// added to every kernel's in-memory headers.
//
// Thread safety: a DeviceLibrary is an immutable value; copies share the prebuilt bytes.
// compile_and_link may run on many threads with one cache.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>

#include "kiln/jit/kernel_cache.hpp"
#include "kiln/jit/linker.hpp"
#include "kiln/jit/program.hpp"
#include "kiln/jit/target.hpp"

namespace kiln::jit {

class DeviceLibrary {
 public:
  // Compiled from source to LTO-IR at first use, per architecture, through the cache.
  static DeviceLibrary from_program(Program program, std::map<std::string, std::string> headers = {});
  // LTO-IR built ahead of time for sm_<arch> (the bytes of `kiln compile --lto`).
  static DeviceLibrary from_ltoir(std::string name, int arch, std::string ltoir,
                                  std::map<std::string, std::string> headers = {});
  // Same, read from a file. Throws kiln::Error (Errc::invalid_argument) naming an unreadable file.
  static DeviceLibrary from_ltoir_file(const std::filesystem::path& file, int arch,
                                       std::map<std::string, std::string> headers = {});

  const std::string& name() const noexcept { return name_; }
  const std::map<std::string, std::string>& headers() const noexcept { return headers_; }
  bool prebuilt() const noexcept { return prebuilt_.has_value(); }

  // The library's LTO-IR for `target`'s architecture, compiled through `cache` when from source.
  // Throws kiln::Error: Errc::compile_failed when the source does not compile, Errc::invalid_argument
  // when a prebuilt library is for another architecture (LTO-IR links only for its own).
  LinkInput input_for(KernelCache& cache, const Target& target) const;

 private:
  std::string name_;
  std::optional<Program> program_;
  std::optional<LinkInput> prebuilt_;
  int prebuilt_arch_ = 0;
  std::map<std::string, std::string> headers_;
};

// Compiles `kernel` to LTO-IR (only its own lines; the libraries' headers are added to its headers),
// then links it with every library's LTO-IR into a CUBIN (or PTX) for `target`, every step through
// `cache`: a second call with the same inputs is a memory hit, a new process finds the link on disk.
// The artifact carries the kernel's lowered names. Throws kiln::Error (Errc::compile_failed,
// Errc::link_failed naming the symbol and input, or what compile and link throw).
Artifact compile_and_link(KernelCache& cache, const Program& kernel, std::span<const DeviceLibrary> libraries,
                          const Target& target, const LinkOptions& options = {});

}  // namespace kiln::jit
