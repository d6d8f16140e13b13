// jit::Package: a versioned kernel package (docs/REPOSITORY.md): a folder holding manifest.json and
// source (+ headers) and/or prebuilt images per architecture (CUBIN per sm_XX, PTX as the fallback).
// Opening one verifies everything a server needs before it may serve it: the manifest's shape, every
// file's SHA-256, that no path or symbolic link leads outside the folder, that every image is for a
// declared architecture, and that every entry point exists in every image with the declared
// parameters (read from the image itself: no GPU needed).
//
// Thread safety: Package and PackageManifest are immutable values once made; any thread may read them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <source_location>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/driver/error.hpp"
#include "kiln/jit/program.hpp"
#include "kiln/jit/target.hpp"

namespace kiln::jit {

class KernelCache;

// A kernel parameter as a manifest declares it. Spelled as kilnd's launch arguments are ("i32",
// "f32", ...), plus "ptr" for any device pointer.
enum class ParameterType : std::uint8_t { pointer, i8, u8, i16, u16, i32, u32, i64, u64, f16, f32, f64 };

std::string_view to_string(ParameterType type) noexcept;  // "ptr", "i8", ..., "f64"
std::optional<ParameterType> parse_parameter_type(std::string_view text) noexcept;
std::size_t size_of(ParameterType type) noexcept;  // bytes the kernel receives (ptr: 8)

struct EntryPoint {
  std::string name;    // what a launch names: a function name or a name expression ("scale<float>")
  std::string symbol;  // its lowered (mangled) name in the images
  std::vector<ParameterType> parameters;
};

struct PackageImage {
  ImageKind kind = ImageKind::cubin;  // cubin or ptx
  // cubin: the architecture it runs on exactly; ptx: the virtual architecture it targets (the
  // driver JIT-compiles it for that architecture and newer).
  int arch = 0;
  std::string file;  // relative to the package folder
};

struct PackageManifest {
  static constexpr int kFormat = 1;  // "format" in manifest.json

  std::string name;         // 1-64 of [A-Za-z0-9_.-], not starting with '.'
  std::uint64_t version = 0;  // >= 1; larger is newer
  std::string description;
  std::vector<EntryPoint> entry_points;  // at least one; distinct names
  std::vector<int> architectures;        // the architectures it declares it serves (90 for sm_90)
  std::string source;                    // relative path of the source file; empty: prebuilt only
  std::map<std::string, std::string> headers;  // include name -> relative path
  CompileOptions options;                // what the images were (and source is) compiled with
  std::vector<PackageImage> images;
  std::map<std::string, std::string> files;  // every file but manifest.json: relative path -> SHA-256 (hex)
  // Every file's size in bytes (the same keys as `files`): a file shorter than this is a copy in
  // progress (incomplete), not a damaged one. In manifest.json both travel together:
  // "files": {"sm_90.cubin": {"sha256": "<hex>", "bytes": 8656}}.
  std::map<std::string, std::uint64_t> file_sizes;
  std::vector<std::string> tenants;          // who may launch it; empty: the server's config decides

  // Throws PackageError (manifest_invalid, naming the field in its message) for anything that does
  // not follow the format; `origin` names the file in messages.
  static PackageManifest parse(std::string_view json, std::string_view origin = "manifest.json");
  // What parse() reads back. Throws PackageError (manifest_invalid) for a manifest parse() would refuse.
  std::string to_json() const;
};

// Why a package was refused. The names (to_string) are what kilnd reports.
enum class PackageProblem : std::uint8_t {
  incomplete,               // no manifest.json, or a file it lists is missing or shorter than it was
                            // (a copy in progress): worth trying again later
  unreadable,               // a file exists but cannot be read
  manifest_invalid,         // manifest.json does not parse or does not follow the format
  checksum_mismatch,        // a file's SHA-256 differs from the manifest's
  undeclared_architecture,  // an image for (or an image whose ELF/PTX header says) an architecture the
                            // manifest does not declare, or one that differs from its entry
  path_outside,             // a path, or a symbolic link, leads outside the package folder
  entry_point_missing,      // an entry point's symbol is not in an image
  parameters_differ,        // an image's parameters for an entry point differ from the declared ones
  no_image,                 // nothing in the package can run on a device (image_for)
};

std::string_view to_string(PackageProblem problem) noexcept;  // "incomplete", "checksum_mismatch", ...

// A kiln::Error (Errc::invalid_argument) that carries the problem and the package file at fault, so
// callers never parse the message.
class PackageError : public Error {
 public:
  PackageError(PackageProblem problem, std::string file, const std::string& what,
               std::source_location where = std::source_location::current());
  PackageProblem problem() const noexcept { return problem_; }
  const std::string& file() const noexcept { return file_; }  // relative to the package; "" for none

 private:
  PackageProblem problem_;
  std::string file_;
};

// The parameter sizes (bytes, in order) of kernel `symbol` as the image declares them: from a
// CUBIN's .nv.info.<symbol> section (EIATTR_KPARAM_INFO), from PTX's .entry parameter list.
// nullopt when the image has no such kernel. Throws PackageError (unreadable) for an image that is
// not a CUBIN or PTX it can read.
std::optional<std::vector<std::size_t>> entry_parameter_sizes(std::string_view image, ImageKind kind,
                                                              std::string_view symbol);
// The architecture an image is built for: a CUBIN's ELF header, PTX's .target line. Throws
// PackageError (unreadable) when it cannot tell.
int image_architecture(std::string_view image, ImageKind kind);

class Package {
 public:
  // Reads and verifies the package in `folder` (see the file comment). Throws PackageError.
  static Package open(const std::filesystem::path& folder);

  const PackageManifest& manifest() const noexcept { return *manifest_; }
  const std::filesystem::path& folder() const noexcept { return folder_; }

  // The image for a device of architecture `device_arch`: the CUBIN for exactly that architecture,
  // else the PTX of the highest virtual architecture not above it (the driver JIT-compiles it),
  // else nullptr with `*why` (when given) saying what the package carries and why none fits.
  const PackageImage* image_for(int device_arch, std::string* why = nullptr) const;
  // An image's bytes as read and verified at open (PTX without a terminating NUL).
  std::shared_ptr<const std::string> image_bytes(const PackageImage& image) const;
  // The source as a Program (name expressions: the entry points' names), when the package carries it.
  std::optional<Program> program() const;

 private:
  std::filesystem::path folder_;
  std::shared_ptr<const PackageManifest> manifest_;
  std::map<std::string, std::shared_ptr<const std::string>> images_;  // by file
  std::optional<Program> program_;
};

// What `kiln pack` builds: entry points with declared parameters, compiled for each target.
struct PackRequest {
  std::string name;
  std::uint64_t version = 0;
  std::string description;
  Program program;  // source, headers (in memory), options
  // Names or name expressions with their declared parameters; `symbol` is filled in by pack().
  std::vector<EntryPoint> entry_points;
  std::vector<Target> targets;  // CUBIN per sm_XX and/or PTX (compute_XX); at least one
  bool include_source = true;   // carry the source and headers too (a GPU no image fits compiles it)
  std::vector<std::string> tenants;
  unsigned parallel = 0;        // compiles at once; 0: the hardware threads
  // Called after each target is compiled (from the compiling thread, one call at a time).
  std::function<void(const Target& target, std::size_t done, std::size_t total)> progress;
};

// Compiles every target through `cache` (in parallel), checks every entry point in every image
// against its declared parameters, and writes the package to `out`: into a temporary folder beside
// it, manifest last, renamed into place at the end, so a server polling the repository never sees
// it half-written. `out` must not exist. Throws kiln::Error (compile_failed with diagnostics, ...)
// or PackageError (a declared entry point missing or with other parameters).
PackageManifest pack(const PackRequest& request, KernelCache& cache, const std::filesystem::path& out);

}  // namespace kiln::jit
