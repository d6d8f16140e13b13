#include "kiln/jit/package.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "jit/detail/sha256.hpp"
#include "kiln/jit/kernel_cache.hpp"

namespace kiln::jit {

namespace detail {
void check_package_path(const std::string& path, std::string_view origin, const std::string& field);
void validate_manifest(const PackageManifest& m, std::string_view origin);
}  // namespace detail

namespace {

namespace fs = std::filesystem;

constexpr const char* kManifest = "manifest.json";

std::string hex(const detail::Digest& digest) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (std::uint8_t b : digest) {
    s += kDigits[b >> 4];
    s += kDigits[b & 15];
  }
  return s;
}

std::string arch_name(ImageKind kind, int arch) { return (kind == ImageKind::ptx ? "compute_" : "sm_") + std::to_string(arch); }

std::string type_list(const std::vector<ParameterType>& types) {
  std::string s;
  for (ParameterType t : types) s += (s.empty() ? "" : ", ") + std::string(to_string(t));
  return "(" + s + ")";
}

std::string size_list(const std::vector<std::size_t>& sizes) {
  std::string s;
  for (std::size_t n : sizes) s += (s.empty() ? "" : ", ") + std::to_string(n);
  return "(" + s + ")";
}

std::vector<std::size_t> declared_sizes(const EntryPoint& e) {
  std::vector<std::size_t> sizes;
  for (ParameterType t : e.parameters) sizes.push_back(size_of(t));
  return sizes;
}

// entry_point_missing / parameters_differ for entry `e` in image `bytes`, named `file`.
void check_entry(const EntryPoint& e, std::string_view bytes, ImageKind kind, const std::string& file) {
  std::optional<std::vector<std::size_t>> sizes;
  try {
    sizes = entry_parameter_sizes(bytes, kind, e.symbol);
  } catch (const PackageError& error) {
    throw PackageError(PackageProblem::unreadable, file, file + ": " + error.detail());
  }
  if (!sizes)
    throw PackageError(PackageProblem::entry_point_missing, file,
                       file + ": entry point '" + e.name + "' (symbol " + e.symbol + ") is not a kernel of this " +
                           std::string(to_string(kind)) + " image");
  const std::vector<std::size_t> declared = declared_sizes(e);
  if (*sizes != declared)
    throw PackageError(PackageProblem::parameters_differ, file,
                       file + ": entry point '" + e.name + "' (symbol " + e.symbol + ") is declared with " +
                           type_list(e.parameters) + ", bytes " + size_list(declared) + ", but the image's kernel takes bytes " +
                           size_list(*sizes));
}

// Whether `path` (absolute, canonical when it exists) lies inside `root` (canonical).
bool inside(const fs::path& root, const fs::path& path) {
  auto r = root.begin(), p = path.begin();
  for (; r != root.end(); ++r, ++p)
    if (p == path.end() || *r != *p) return false;
  return true;
}

// path_outside when a component of `rel` below `root` is a symbolic link resolving outside it
// (dangling or not), or when the whole path resolves outside.
void check_links(const fs::path& root, const std::string& rel) {
  fs::path at = root;
  for (const auto& part : fs::path(rel)) {
    at /= part;
    std::error_code ec;
    const fs::file_status st = fs::symlink_status(at, ec);
    if (ec || !fs::exists(st)) return;  // missing: the caller reports it
    if (!fs::is_symlink(st)) continue;
    fs::path target = fs::read_symlink(at, ec);
    if (ec) throw PackageError(PackageProblem::unreadable, rel, rel + ": cannot read the symbolic link " + at.string());
    if (target.is_relative()) target = at.parent_path() / target;
    const fs::path resolved = fs::weakly_canonical(target, ec);
    if (ec || !inside(root, resolved))
      throw PackageError(PackageProblem::path_outside, rel,
                         rel + ": the symbolic link " + at.string() + " leads outside the package folder (to " +
                             target.string() + ")");
  }
  std::error_code ec;
  const fs::path resolved = fs::canonical(root / rel, ec);
  if (!ec && !inside(root, resolved))
    throw PackageError(PackageProblem::path_outside, rel, rel + ": resolves outside the package folder (to " + resolved.string() + ")");
}

// The whole file, or nullopt when it does not exist (or a link in its path is dangling).
std::optional<std::string> read_file(const fs::path& path, const std::string& rel) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
    throw PackageError(PackageProblem::unreadable, rel, rel + ": cannot open " + path.string() + ": " + std::strerror(errno));
  }
  struct stat st {};
  std::string bytes;
  bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  const int saved = ok ? 0 : (errno ? errno : EISDIR);
  if (ok) {
    bytes.resize(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (ok) {
      if (got == bytes.size()) bytes.resize(bytes.size() + 65536);  // it grew since fstat: read on
      const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ok = n == 0;
        break;
      }
      got += static_cast<std::size_t>(n);
    }
    bytes.resize(got);
  }
  const int read_errno = errno;
  ::close(fd);
  if (!ok)
    throw PackageError(PackageProblem::unreadable, rel,
                       rel + ": cannot read " + path.string() + ": " + std::strerror(saved ? saved : read_errno) +
                           (S_ISDIR(st.st_mode) ? " (a folder)" : ""));
  return bytes;
}

[[noreturn]] void throw_errno(const std::string& what) {
  throw Error(Errc::invalid_argument, what + ": " + std::strerror(errno));
}

void write_file_synced(const fs::path& path, std::string_view bytes) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec) throw Error(Errc::invalid_argument, "cannot create folder " + path.parent_path().string() + ": " + ec.message());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw_errno("cannot create " + path.string());
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = errno;
      ::close(fd);
      errno = e;
      throw_errno("cannot write " + path.string());
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int e = errno;
    ::close(fd);
    errno = e;
    throw_errno("cannot fsync " + path.string());
  }
  ::close(fd);
}

void sync_folder(const fs::path& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

std::string_view to_string(PackageProblem problem) noexcept {
  switch (problem) {
    case PackageProblem::incomplete: return "incomplete";
    case PackageProblem::unreadable: return "unreadable";
    case PackageProblem::manifest_invalid: return "manifest_invalid";
    case PackageProblem::checksum_mismatch: return "checksum_mismatch";
    case PackageProblem::undeclared_architecture: return "undeclared_architecture";
    case PackageProblem::path_outside: return "path_outside";
    case PackageProblem::entry_point_missing: return "entry_point_missing";
    case PackageProblem::parameters_differ: return "parameters_differ";
    case PackageProblem::no_image: return "no_image";
  }
  return "manifest_invalid";
}

PackageError::PackageError(PackageProblem problem, std::string file, const std::string& what, std::source_location where)
    : Error(Errc::invalid_argument, "package " + std::string(to_string(problem)) + ": " + what, where),
      problem_(problem),
      file_(std::move(file)) {}

Package Package::open(const fs::path& folder) {
  std::error_code ec;
  const fs::path root = fs::canonical(folder, ec);
  if (ec || !fs::is_directory(root))
    throw PackageError(PackageProblem::incomplete, "", "no package folder " + folder.string());
  Package p;
  p.folder_ = root;

  check_links(root, kManifest);
  const auto manifest_text = read_file(root / kManifest, kManifest);
  if (!manifest_text)
    throw PackageError(PackageProblem::incomplete, kManifest,
                       "no manifest.json in " + root.string() + " (a package still being copied?)");
  auto manifest = std::make_shared<PackageManifest>(PackageManifest::parse(*manifest_text, kManifest));

  // Every file: inside the folder, complete, then its checksum.
  std::map<std::string, std::shared_ptr<const std::string>> contents;
  for (const auto& [rel, digest] : manifest->files) {
    check_links(root, rel);
    auto bytes = read_file(root / rel, rel);
    const std::uint64_t expected = manifest->file_sizes.at(rel);
    if (!bytes)
      throw PackageError(PackageProblem::incomplete, rel, rel + ": listed in manifest.json but missing from " + root.string());
    if (bytes->size() < expected)
      throw PackageError(PackageProblem::incomplete, rel,
                         rel + ": " + std::to_string(bytes->size()) + " bytes of the " + std::to_string(expected) +
                             " manifest.json records (a copy in progress?)");
    const std::string actual = hex(detail::sha256(*bytes));
    if (bytes->size() != expected || actual != digest)
      throw PackageError(PackageProblem::checksum_mismatch, rel,
                         rel + ": SHA-256 " + actual + " (" + std::to_string(bytes->size()) + " bytes), manifest.json records " +
                             digest + " (" + std::to_string(expected) + " bytes)");
    contents.emplace(rel, std::make_shared<const std::string>(std::move(*bytes)));
  }

  // Every image: for a declared architecture, the one its header names; every entry point in it.
  const std::set<int> declared(manifest->architectures.begin(), manifest->architectures.end());
  for (const PackageImage& image : manifest->images) {
    const std::string listed = arch_name(image.kind, image.arch);
    if (!declared.contains(image.arch))
      throw PackageError(PackageProblem::undeclared_architecture, image.file,
                         image.file + ": an image for " + listed + ", which the package's architectures do not declare");
    const std::string& bytes = *contents.at(image.file);
    int actual = 0;
    try {
      actual = image_architecture(bytes, image.kind);
    } catch (const PackageError& e) {
      throw PackageError(PackageProblem::unreadable, image.file, image.file + ": " + e.detail());
    }
    if (actual != image.arch)
      throw PackageError(PackageProblem::undeclared_architecture, image.file,
                         image.file + ": listed as " + listed + " but the image says " + arch_name(image.kind, actual));
    for (const EntryPoint& e : manifest->entry_points) check_entry(e, bytes, image.kind, image.file);
    p.images_.emplace(image.file, contents.at(image.file));
  }

  if (!manifest->source.empty()) {
    Program program;
    program.name = fs::path(manifest->source).filename().string();
    program.source = *contents.at(manifest->source);
    for (const auto& [name, rel] : manifest->headers) program.headers[name] = *contents.at(rel);
    program.options = manifest->options;
    for (const EntryPoint& e : manifest->entry_points) program.name_expressions.push_back(e.name);
    p.program_ = std::move(program);
  }
  p.manifest_ = std::move(manifest);
  return p;
}

const PackageImage* Package::image_for(int device_arch, std::string* why) const {
  const PackageImage* ptx = nullptr;
  for (const PackageImage& image : manifest_->images) {
    if (image.kind == ImageKind::cubin && image.arch == device_arch) return &image;
    if (image.kind == ImageKind::ptx && image.arch <= device_arch && (ptx == nullptr || image.arch > ptx->arch)) ptx = &image;
  }
  if (ptx != nullptr) return ptx;
  if (why != nullptr) {
    std::string cubins, ptxs;
    for (const PackageImage& image : manifest_->images)
      (image.kind == ImageKind::cubin ? cubins : ptxs) +=
          ((image.kind == ImageKind::cubin ? cubins : ptxs).empty() ? "" : ", ") + arch_name(image.kind, image.arch);
    *why = "package " + manifest_->name + " version " + std::to_string(manifest_->version) + " carries " +
           (cubins.empty() ? "no CUBIN" : "CUBIN for " + cubins) + " and " + (ptxs.empty() ? "no PTX" : "PTX for " + ptxs) +
           ": none runs on sm_" + std::to_string(device_arch) +
           " (a CUBIN runs only on its own architecture, PTX on its architecture and newer)" +
           (program_ ? "; its source can be compiled for it" : "");
  }
  return nullptr;
}

std::shared_ptr<const std::string> Package::image_bytes(const PackageImage& image) const {
  const auto it = images_.find(image.file);
  return it == images_.end() ? nullptr : it->second;
}

std::optional<Program> Package::program() const { return program_; }

PackageManifest pack(const PackRequest& request, KernelCache& cache, const fs::path& out) {
  if (request.targets.empty()) throw Error(Errc::invalid_argument, "pack: no targets to compile for");
  for (const Target& t : request.targets)
    if (t.kind != ImageKind::cubin && t.kind != ImageKind::ptx)
      throw Error(Errc::invalid_argument, "pack: a package carries CUBIN and PTX images, not " + t.arch_name());
  if (request.include_source && !request.program.include_dirs.empty())
    throw Error(Errc::invalid_argument,
                "pack: include folders do not travel with the source; give the headers it includes as in-memory "
                "headers (kiln pack --header name=file), or leave the source out");
  std::error_code ec;
  if (fs::exists(fs::symlink_status(out, ec))) throw Error(Errc::invalid_argument, "pack: " + out.string() + " already exists");

  PackageManifest m;
  m.name = request.name;
  m.version = request.version;
  m.description = request.description;
  m.entry_points = request.entry_points;
  m.options = request.program.options;
  m.tenants = request.tenants;
  std::set<int> archs;
  for (const Target& t : request.targets) archs.insert(t.arch);
  m.architectures.assign(archs.begin(), archs.end());
  std::map<std::string, std::string> files;  // path -> bytes
  if (request.include_source) {
    detail::check_package_path(request.program.name, "pack", "program name");
    m.source = "src/" + request.program.name;
    files[m.source] = request.program.source;
    for (const auto& [name, text] : request.program.headers) {
      detail::check_package_path(name, "pack", "header '" + name + "'");
      m.headers[name] = "include/" + name;
      files["include/" + name] = text;
    }
  }
  for (const EntryPoint& e : m.entry_points)
    if (e.name.empty()) throw Error(Errc::invalid_argument, "pack: an entry point without a name");
  // Fail on the manifest's own rules (name, version, duplicates) before compiling anything.
  {
    PackageManifest probe = m;
    for (EntryPoint& e : probe.entry_points) e.symbol = e.name;
    if (probe.source.empty()) probe.images.push_back({ImageKind::cubin, 1, "probe"});
    for (const auto& im : probe.images) probe.files[im.file] = std::string(64, '0'), probe.file_sizes[im.file] = 0;
    for (const auto& [path, bytes] : files) probe.files[path] = std::string(64, '0'), probe.file_sizes[path] = 0;
    detail::validate_manifest(probe, "pack");
  }

  Program program = request.program;
  program.name_expressions.clear();
  for (const EntryPoint& e : m.entry_points) program.name_expressions.push_back(e.name);

  // Compile every target, `parallel` at once; the first failure is rethrown once all have stopped.
  const std::size_t total = request.targets.size();
  std::vector<Artifact> artifacts(total);
  const unsigned hardware = std::max(1u, std::thread::hardware_concurrency());
  const unsigned threads = static_cast<unsigned>(std::min<std::size_t>(request.parallel ? request.parallel : hardware, total));
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mutex;  // the progress callback and the first error
  std::size_t done = 0;
  std::exception_ptr error;
  auto work = [&] {
    for (std::size_t i; !failed && (i = next.fetch_add(1)) < total;) {
      try {
        artifacts[i] = cache.compile(program, request.targets[i]);
        std::lock_guard lock(mutex);
        ++done;
        if (request.progress) request.progress(request.targets[i], done, total);
      } catch (...) {
        std::lock_guard lock(mutex);
        if (!error) error = std::current_exception();
        failed = true;
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);

  // Lowered names (one per entry point, the same in every image), then every image checked.
  for (EntryPoint& e : m.entry_points) {
    e.symbol = artifacts.front().lowered_name(e.name);
    for (const Artifact& a : artifacts)
      if (a.lowered_name(e.name) != e.symbol)
        throw Error(Errc::internal, "pack: NVRTC lowered '" + e.name + "' to " + e.symbol + " for " +
                                        request.targets.front().arch_name() + " but to " + a.lowered_name(e.name) +
                                        " for " + a.target().arch_name());
  }
  for (std::size_t i = 0; i < total; ++i) {
    const Target& t = request.targets[i];
    const std::string file = t.arch_name() + (t.kind == ImageKind::ptx ? ".ptx" : ".cubin");
    for (const EntryPoint& e : m.entry_points) check_entry(e, artifacts[i].image(), t.kind, file);
    m.images.push_back({t.kind, t.arch, file});
    files[file] = std::string(artifacts[i].image());
  }
  for (const auto& [path, bytes] : files) {
    m.files[path] = hex(detail::sha256(bytes));
    m.file_sizes[path] = bytes.size();
  }
  const std::string manifest_json = m.to_json();

  // Into a hidden folder beside `out`, manifest last, then renamed into place.
  const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
  fs::create_directories(parent, ec);
  if (ec) throw Error(Errc::invalid_argument, "pack: cannot create folder " + parent.string() + ": " + ec.message());
  std::random_device random;
  const fs::path temp = parent / ("." + out.filename().string() + ".packing-" + std::to_string(::getpid()) + "-" +
                                  std::to_string(random()));
  try {
    if (!fs::create_directory(temp)) throw Error(Errc::invalid_argument, "pack: " + temp.string() + " already exists");
    std::set<fs::path> folders{temp};
    for (const auto& [path, bytes] : files) {
      write_file_synced(temp / path, bytes);
      folders.insert((temp / path).parent_path());
    }
    for (const auto& f : folders) sync_folder(f);
    write_file_synced(temp / kManifest, manifest_json);
    sync_folder(temp);
    // RENAME_NOREPLACE: a folder that appeared at `out` meanwhile (even an empty one) is not replaced.
    int renamed = ::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, out.c_str(), RENAME_NOREPLACE);
    if (renamed != 0 && (errno == EINVAL || errno == ENOSYS)) renamed = ::rename(temp.c_str(), out.c_str());
    if (renamed != 0) throw_errno("pack: cannot rename " + temp.string() + " to " + out.string());
    sync_folder(parent);
  } catch (...) {
    fs::remove_all(temp, ec);
    throw;
  }
  return m;
}

}  // namespace kiln::jit
