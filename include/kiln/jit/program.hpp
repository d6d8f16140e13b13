// jit::Program: everything NVRTC is given to build one translation unit: source, name, in-memory
// headers, include folders, structured options and the name expressions whose lowered (mangled)
// names the caller wants back.
//
// Thread safety: a plain value. Copy it freely; a const Program may be read from any thread.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace kiln::jit {

// The options NVRTC understands, kept structured so the cache key can normalise them: defines
// are order-independent (sorted by name, same-name order kept), the rest keeps its order.
struct CompileOptions {
  std::string standard;              // "c++17", "c++20"; empty: NVRTC's default
  std::vector<std::string> defines;  // "NAME" or "NAME=VALUE"
  bool line_info = false;            // -lineinfo
  bool fast_math = false;            // --use_fast_math
  int max_registers = 0;             // --maxrregcount=N; 0: no limit
  bool relocatable_device_code = false;  // -rdc=true
  // -minimal (NVRTC 12.4+): leaves texture/surface functions and the cudadevrt runtime API out of
  // NVRTC's built-in headers. A small kernel compiles in ~0.57x the time; a program that includes
  // library headers (CUB) or uses those declarations fails with it.
  bool minimal = false;
  std::vector<std::string> extra;    // anything else NVRTC takes, passed verbatim, in order

  // NVRTC's spelling of these options (without the architecture and include folders). Throws
  // kiln::Error (Errc::invalid_argument) naming a malformed define or a negative register cap.
  std::vector<std::string> to_nvrtc() const;
};

struct Program {
  std::string name = "kernel.cu";              // the file name diagnostics use
  std::string source;
  std::map<std::string, std::string> headers;  // include name -> text, served from memory
  std::vector<std::string> include_dirs;       // searched before the toolkit's folders
  CompileOptions options;
  std::vector<std::string> name_expressions;   // e.g. "my_kernel<float, 128>"

  // A program whose source is the file's content and whose name is the file's name. Throws
  // kiln::Error (Errc::invalid_argument) naming the file when it cannot be read.
  static Program from_file(const std::filesystem::path& file);
};

}  // namespace kiln::jit
