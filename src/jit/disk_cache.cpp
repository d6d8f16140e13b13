#include "kiln/jit/disk_cache.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "jit/detail/entry_format.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/jit/diagnostics.hpp"

namespace kiln::jit {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kEntrySuffix = ".kjit";
constexpr std::string_view kTempPrefix = ".tmp-";
constexpr auto kStaleTempAge = std::chrono::hours(1);
constexpr std::uint64_t kRescanEveryWrites = 64;  // also catches PCH files NVRTC adds

std::string getenv_string(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// Closes a file descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// The whole file, or nullopt when it does not exist (or vanished); throws nothing.
std::optional<std::string> read_file(const fs::path& path, int& error) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    error = errno;
    return std::nullopt;
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    error = errno;
    return std::nullopt;
  }
  std::string bytes(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::read(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = errno;
      return std::nullopt;
    }
    if (n == 0) break;  // shrank while reading: the checks below see a truncated entry
    done += static_cast<std::size_t>(n);
  }
  bytes.resize(done);
  return bytes;
}

// Creates the folder (and entries/, pch/) and proves a file can be written there.
bool usable(const fs::path& dir, bool private_folder, std::string& why) {
  std::error_code ec;
  fs::create_directories(dir / "entries", ec);
  if (!ec) fs::create_directories(dir / "pch", ec);
  if (ec) {
    why = ec.message();
    return false;
  }
  if (private_folder) {
    // A folder under /tmp could have been made by another user to feed us binaries.
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::getuid()) {
      why = "owned by another user";
      return false;
    }
    ::chmod(dir.c_str(), 0700);
  }
  std::string probe = (dir / (std::string(kTempPrefix) + "probe-XXXXXX")).string();
  int fd = ::mkstemp(probe.data());
  if (fd < 0) {
    why = std::strerror(errno);
    return false;
  }
  ::close(fd);
  ::unlink(probe.c_str());
  return true;
}

std::uint64_t default_max_bytes() {
  std::string text = getenv_string("KILN_CACHE_MAX_BYTES");
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (!text.empty() && (ec != std::errc() || end != text.data() + text.size() || value == 0))
    throw Error(Errc::invalid_argument, "KILN_CACHE_MAX_BYTES='" + text + "' is not a positive number of bytes");
  return text.empty() ? kDefaultDiskCacheBytes : value;
}

struct FileInfo {
  fs::path path;
  std::uint64_t bytes;
  fs::file_time_type mtime;
  bool entry;  // a .kjit entry (else a PCH file or a temporary file)
  bool temp;
};

// Every regular file under entries/ and pch/; files that vanish while listing are skipped.
std::vector<FileInfo> list_files(const fs::path& dir) {
  std::vector<FileInfo> files;
  for (const char* sub : {"entries", "pch"}) {
    std::error_code ec;
    fs::recursive_directory_iterator it(dir / sub, fs::directory_options::skip_permission_denied, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      std::error_code fec;
      if (!it->is_regular_file(fec)) continue;
      auto size = it->file_size(fec);
      if (fec) continue;
      auto mtime = it->last_write_time(fec);
      if (fec) continue;
      std::string name = it->path().filename().string();
      files.push_back(FileInfo{it->path(), size, mtime, name.ends_with(kEntrySuffix), name.starts_with(kTempPrefix)});
    }
  }
  return files;
}

}  // namespace

fs::path DiskCache::default_directory() {
  if (std::string dir = getenv_string("KILN_CACHE_DIR"); !dir.empty()) return dir;
  if (std::string xdg = getenv_string("XDG_CACHE_HOME"); !xdg.empty()) return fs::path(xdg) / "kiln";
  if (std::string home = getenv_string("HOME"); !home.empty()) return fs::path(home) / ".cache" / "kiln";
  return fs::temp_directory_path() / ("kiln-cache-" + std::to_string(::getuid()));
}

DiskCache::DiskCache(DiskCacheOptions options)
    : directory_(options.directory.empty() ? default_directory() : options.directory),
      max_bytes_(options.max_bytes ? options.max_bytes : default_max_bytes()) {
  std::string why;
  if (!usable(directory_, false, why)) {
    std::error_code ec;
    fs::path fallback = fs::temp_directory_path(ec) / ("kiln-cache-" + std::to_string(::getuid()));
    std::string fallback_why;
    if (!usable(fallback, true, fallback_why))
      throw Error(Errc::invalid_argument, "kernel cache folder '" + directory_.string() + "' is not usable (" + why +
                                              ") and neither is the fallback '" + fallback.string() + "' (" +
                                              fallback_why + ")");
    warn("kernel cache folder '" + directory_.string() + "' is not writable (" + why + "); using '" +
         fallback.string() + "' instead (set KILN_CACHE_DIR to choose another)");
    directory_ = fallback;
    fell_back_ = true;
  }
  approx_bytes_ = usage().total_bytes();
}

fs::path DiskCache::entry_path(const CacheKey& key) const {
  std::string hex = key.hex();
  return directory_ / "entries" / hex.substr(0, 2) / (hex + std::string(kEntrySuffix));
}

std::optional<Artifact> DiskCache::load(const CacheKey& key) {
  const fs::path path = entry_path(key);
  int error = 0;
  auto bytes = read_file(path, error);
  if (!bytes) {
    if (error != ENOENT) warn("cannot read cache entry '" + path.string() + "': " + std::strerror(error));
    misses_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  std::string why;
  auto contents = detail::decode_entry(*bytes, key, why);
  if (!contents) {
    corrupt_.fetch_add(1, std::memory_order_relaxed);
    misses_.fetch_add(1, std::memory_order_relaxed);
    ::unlink(path.c_str());  // another process may have removed it already: fine
    warn("corrupt cache entry '" + path.string() + "' (" + why + "): removed, will be rebuilt");
    return std::nullopt;
  }
  contents->diagnostics = parse_nvrtc_log(contents->log);
  ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0);  // least recently used is judged by mtime
  hits_.fetch_add(1, std::memory_order_relaxed);
  return Artifact(std::move(*contents), Origin::disk);
}

void DiskCache::store(const Artifact& artifact) {
  const fs::path path = entry_path(artifact.key());
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  const std::string bytes = detail::encode_entry(artifact);
  // The temporary file sits in the entry's folder so rename() is atomic (same file system).
  std::string temp = (path.parent_path() / (std::string(kTempPrefix) + path.filename().string() + "-XXXXXX")).string();
  Fd fd(::mkstemp(temp.data()));
  if (fd.get() < 0) {
    warn("cannot create a cache entry in '" + path.parent_path().string() + "': " + std::strerror(errno));
    return;
  }
  ::fchmod(fd.get(), 0644);
  // No fsync: it costs milliseconds per compile on a VM disk (more than the compile of a small
  // kernel), and is not needed for integrity: every read checks the entry's length and checksum,
  // so an entry torn by a crash is found, removed and rebuilt like any corrupt one.
  const bool written = write_all(fd.get(), bytes);
  const int write_errno = errno;
  ::close(fd.release());
  if (!written || ::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = written ? errno : write_errno;
    ::unlink(temp.c_str());
    warn("cannot write cache entry '" + path.string() + "': " + std::strerror(err));
    return;
  }
  writes_.fetch_add(1, std::memory_order_relaxed);
  note_written(bytes.size());
}

void DiskCache::note_written(std::uint64_t bytes) {
  const std::uint64_t total = approx_bytes_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  if (total > max_bytes_ || writes() % kRescanEveryWrites == 0) {
    // Prune below the cap, so the next writes do not each pay for a scan.
    if (const std::uint64_t actual = usage().total_bytes(); actual > max_bytes_)
      prune(max_bytes_ - max_bytes_ / 10);
    else
      approx_bytes_ = actual;
  }
}

PruneResult DiskCache::prune(std::optional<std::uint64_t> max_bytes, bool verify) {
  const std::uint64_t limit = max_bytes.value_or(max_bytes_);
  PruneResult result;
  std::vector<FileInfo> files = list_files(directory_);
  const auto now = fs::file_time_type::clock::now();
  std::uint64_t total = 0;
  std::vector<FileInfo> kept;
  for (auto& f : files) {
    std::error_code ec;
    if (f.temp && now - f.mtime > kStaleTempAge) {
      if (fs::remove(f.path, ec)) ++result.stale_temp_removed;
      continue;
    }
    if (verify && f.entry) {
      const std::string hex = f.path.stem().string();
      int error = 0;
      std::string why = "file name is not a key";
      auto bytes = read_file(f.path, error);
      bool good = false;
      if (bytes) {
        try {
          good = detail::decode_entry(*bytes, CacheKey::from_hex(hex), why).has_value();
        } catch (const Error&) {
          good = false;
        }
      }
      if (bytes && !good) {
        if (fs::remove(f.path, ec)) ++result.corrupt_removed;
        corrupt_.fetch_add(1, std::memory_order_relaxed);
        warn("corrupt cache entry '" + f.path.string() + "' (" + why + "): removed");
        continue;
      }
      if (!bytes) continue;  // vanished meanwhile
    }
    total += f.bytes;
    if (!f.temp) kept.push_back(std::move(f));
  }
  std::sort(kept.begin(), kept.end(), [](const FileInfo& a, const FileInfo& b) { return a.mtime < b.mtime; });
  for (const auto& f : kept) {
    if (total <= limit) break;
    std::error_code ec;
    if (fs::remove(f.path, ec)) {
      ++result.removed_files;
      result.removed_bytes += f.bytes;
      evictions_.fetch_add(1, std::memory_order_relaxed);
    }
    total -= f.bytes;  // gone either way: removed here or by another process
  }
  approx_bytes_ = total;
  return result;
}

std::uint64_t DiskCache::clear() {
  std::uint64_t removed = 0;
  for (const auto& f : list_files(directory_)) {
    std::error_code ec;
    removed += fs::remove(f.path, ec) ? 1 : 0;
  }
  approx_bytes_ = 0;
  return removed;
}

DiskUsage DiskCache::usage() const {
  DiskUsage u;
  for (const auto& f : list_files(directory_)) {
    if (f.entry) {
      ++u.entries;
      u.entry_bytes += f.bytes;
    } else if (f.temp) {
      u.entry_bytes += f.bytes;
    } else {
      ++u.pch_files;
      u.pch_bytes += f.bytes;
    }
  }
  return u;
}

void DiskCache::warn(std::string text) {
  std::lock_guard lock(warnings_mutex_);
  constexpr std::size_t kMaxWarnings = 100;  // a long-lived process must not grow without bound
  if (warnings_.size() == kMaxWarnings) warnings_.erase(warnings_.begin() + 1);  // keep the first (fallback)
  warnings_.push_back(std::move(text));
}

std::vector<std::string> DiskCache::warnings() const {
  std::lock_guard lock(warnings_mutex_);
  return warnings_;
}

}  // namespace kiln::jit
