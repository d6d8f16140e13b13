#include "kiln/jit/disk_cache.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "jit/detail/cache_files.hpp"
#include "jit/detail/entry_format.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/jit/diagnostics.hpp"

namespace kiln::jit {
namespace {

namespace fs = std::filesystem;
using detail::UniqueFd;

constexpr std::string_view kEntrySuffix = ".kjit";
constexpr std::string_view kTempPrefix = ".tmp-";
constexpr std::string_view kLockSuffix = ".lock";
constexpr const char* kUsageFile = "usage";  // the folder-wide lock, and the shared byte count
constexpr std::int64_t kStaleSeconds = 3600;   // temporary and lock files older than this are litter
constexpr std::uint64_t kRescanEveryWrites = 64;  // also catches PCH files NVRTC adds
constexpr int kPchDepth = 8;
// The folder lock is held for a scan and a few unlinks: longer means a stopped holder.
constexpr auto kUsageLockWait = std::chrono::seconds(10);
// The folders kiln uses inside the cache folder; each must be a real folder no one else can write.
constexpr const char* kSubfolders[] = {"entries", "pch", "locks", "nvrtc-facts"};

std::string getenv_string(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string octal(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// Empty when a folder with this status may be trusted; else why not. Trusted: owned by us or by
// root (who can change what we run anyway), and writable by no one else, except through the
// sticky bit (which stops others from renaming or removing what we put there).
std::string distrust(const struct stat& st, bool sticky_allowed) {
  if (!S_ISDIR(st.st_mode)) return std::string(detail::file_type_name(st.st_mode)) + ", not a folder";
  if (st.st_uid != ::geteuid() && st.st_uid != 0)
    return "owned by another user (uid " + std::to_string(st.st_uid) + "): its entries could be planted";
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(sticky_allowed && (st.st_mode & S_ISVTX)))
    return "writable by its group or other users (mode " + octal(st.st_mode) +
           ") without the sticky bit: its entries could be planted";
  return "";
}

bool is_empty_folder(int fd) {
  return detail::walk_folder(fd, 0).empty();
}

struct OpenedFolder {
  UniqueFd fd;
  fs::path path;      // the folder opened (a link resolved)
  std::string why;    // when !fd
  bool unsafe = false;  // !fd because it cannot be trusted (rather than not written)
};

// Opens (creating it if needed) a cache folder and checks that it may be used; see disk_cache.hpp.
// A private folder (the fallback) must moreover be ours, not a link, and is made 0700.
OpenedFolder open_cache_folder(const fs::path& path, bool private_folder) {
  OpenedFolder r;
  r.path = path;
  auto refuse = [&](std::string why, bool unsafe) {
    r.fd.reset();
    r.why = std::move(why);
    r.unsafe = unsafe;
    return std::move(r);
  };
  std::error_code ec;
  if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return refuse(std::strerror(errno), false);
  struct stat link {};
  if (::lstat(path.c_str(), &link) != 0) return refuse(std::strerror(errno), false);
  bool through_link = false;
  if (S_ISLNK(link.st_mode)) {
    if (private_folder) return refuse("a symbolic link", true);
    if (link.st_uid != ::geteuid() && link.st_uid != 0)
      return refuse("a symbolic link owned by another user (uid " + std::to_string(link.st_uid) + ")", true);
    fs::path resolved = fs::canonical(path, ec);
    if (ec) return refuse("a symbolic link that does not lead to a folder (" + ec.message() + ")", false);
    r.path = resolved;
    through_link = true;
  }
  r.fd.reset(::open(r.path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!r.fd) return refuse(errno == ELOOP ? "replaced by a symbolic link while opened" : std::strerror(errno), errno == ELOOP);
  struct stat st {};
  if (::fstat(r.fd.get(), &st) != 0) return refuse(std::strerror(errno), false);
  if (std::string why = distrust(st, !private_folder); !why.empty())
    return refuse(through_link ? "a symbolic link to '" + r.path.string() + "', " + why : why, true);
  if (private_folder) {
    // A folder under /tmp could have been made by another user to feed us binaries.
    if (st.st_uid != ::geteuid()) return refuse("owned by another user (uid " + std::to_string(st.st_uid) + ")", true);
    ::fchmod(r.fd.get(), 0700);
  }
  // A link may point anywhere (a link to / run as root would fill /): only at a kiln cache or at
  // an empty folder, which becomes one.
  struct stat entries {};
  if (through_link && ::fstatat(r.fd.get(), "entries", &entries, AT_SYMLINK_NOFOLLOW) != 0 &&
      !is_empty_folder(r.fd.get()))
    return refuse("a symbolic link to '" + r.path.string() + "', which is neither empty nor a kiln cache", true);
  for (const char* name : kSubfolders) {
    UniqueFd sub = detail::make_folder_at(r.fd.get(), name, 0755);
    const std::string where = "'" + (r.path / name).string() + "' is ";
    if (!sub) {
      struct stat what {};
      if (errno == ELOOP || errno == ENOTDIR) {
        ::fstatat(r.fd.get(), name, &what, AT_SYMLINK_NOFOLLOW);
        return refuse(where + std::string(detail::file_type_name(what.st_mode)) + ", not a folder", true);
      }
      return refuse(where + "not usable: " + std::strerror(errno), false);
    }
    struct stat sub_st {};
    if (::fstat(sub.get(), &sub_st) != 0) return refuse(std::strerror(errno), false);
    if (std::string why = distrust(sub_st, false); !why.empty()) return refuse(where + why, true);
  }
  const std::string probe = detail::temporary_name("probe");
  UniqueFd probe_fd(::openat(r.fd.get(), probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!probe_fd) return refuse(std::strerror(errno), false);
  ::unlinkat(r.fd.get(), probe.c_str(), 0);
  return r;
}

std::uint64_t default_max_bytes() {
  std::string text = getenv_string("KILN_CACHE_MAX_BYTES");
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (!text.empty() && (ec != std::errc() || end != text.data() + text.size() || value == 0))
    throw Error(Errc::invalid_argument, "KILN_CACHE_MAX_BYTES='" + text + "' is not a positive number of bytes");
  return text.empty() ? kDefaultDiskCacheBytes : value;
}

std::int64_t age_seconds(const struct stat& st) {
  struct timespec now {};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return now.tv_sec - st.st_mtim.tv_sec;
}

// One name under entries/ or pch/.
struct CacheFile {
  enum Kind {
    entry,    // entries/<ab>/<key>.kjit
    temp,     // .tmp-*: a write in progress, or litter of a crashed writer
    foreign,  // another regular file under entries/
    pch,      // a regular file under pch/
    odd,      // not a regular file (link, FIFO, socket, device, a folder where an entry belongs)
  } kind;
  std::string folder;  // "entries/ab", "pch", "pch/fixed-address"
  std::string name;
  struct stat st;
  std::uint64_t bytes() const { return kind == odd ? 0 : static_cast<std::uint64_t>(st.st_size); }
  bool older(const CacheFile& other) const {
    return st.st_mtim.tv_sec != other.st.st_mtim.tv_sec ? st.st_mtim.tv_sec < other.st.st_mtim.tv_sec
                                                        : st.st_mtim.tv_nsec < other.st.st_mtim.tv_nsec;
  }
};

// Everything under entries/ and pch/, without following links. A subfolder that is a link is not
// entered (and is reported through `skipped`).
std::vector<CacheFile> scan(int root, std::vector<std::string>* skipped = nullptr) {
  std::vector<CacheFile> files;
  for (const char* sub : {"entries", "pch"}) {
    UniqueFd fd = detail::open_folder_at(root, sub);
    if (!fd) {
      if (skipped && errno != ENOENT) skipped->push_back(sub);
      continue;
    }
    const bool entries = std::string_view(sub) == "entries";
    for (detail::FoundFile& f : detail::walk_folder(fd.get(), entries ? 1 : kPchDepth)) {
      CacheFile c{CacheFile::odd, f.folder.empty() ? sub : std::string(sub) + "/" + f.folder, std::move(f.name), f.st};
      if (S_ISREG(c.st.st_mode)) {
        if (c.name.starts_with(kTempPrefix)) c.kind = CacheFile::temp;
        else if (!entries) c.kind = CacheFile::pch;
        else if (!f.folder.empty() && c.name.ends_with(kEntrySuffix)) c.kind = CacheFile::entry;
        else c.kind = CacheFile::foreign;
      }
      files.push_back(std::move(c));
    }
  }
  return files;
}

// Removes one scanned name, link-safely; false when it could not be removed (or had gone).
bool remove_file(int root, const CacheFile& f) {
  UniqueFd folder = detail::open_folder_at(root, f.folder);
  return folder && detail::remove_at(folder.get(), f.name) > 0;
}

// The shared accounting in <dir>/usage: "<bytes> <writes>\n", read and written under its flock.
struct UsageRecord {
  std::uint64_t bytes = 0, writes = 0;
  bool valid = false;
};

UsageRecord read_usage(int fd) {
  char text[64] = {};
  const ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
  UsageRecord r;
  if (n <= 0) return r;
  const char* end = text + n;
  auto [p, ec] = std::from_chars(text, end, r.bytes);
  if (ec != std::errc() || p == end || *p != ' ') return r;
  auto [q, ec2] = std::from_chars(p + 1, end, r.writes);
  r.valid = ec2 == std::errc() && q < end && *q == '\n';
  return r;
}

void write_usage(int fd, std::uint64_t bytes, std::uint64_t writes) {
  const std::string text = std::to_string(bytes) + " " + std::to_string(writes) + "\n";
  // The record is a hint the next rescan corrects: a failed write or truncation is no error.
  if (::pwrite(fd, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size()) &&
      ::ftruncate(fd, static_cast<off_t>(text.size())) != 0) {
  }
}

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

// --- KeyLock ---------------------------------------------------------------------------------

KeyLock::KeyLock(KeyLock&& other) noexcept
    : folder_fd_(std::exchange(other.folder_fd_, -1)),
      fd_(std::exchange(other.fd_, -1)),
      name_(std::move(other.name_)),
      state_(other.state_) {}

KeyLock& KeyLock::operator=(KeyLock&& other) noexcept {
  if (this != &other) {
    release();
    folder_fd_ = std::exchange(other.folder_fd_, -1);
    fd_ = std::exchange(other.fd_, -1);
    name_ = std::move(other.name_);
    state_ = other.state_;
  }
  return *this;
}

KeyLock::~KeyLock() { release(); }

void KeyLock::release() noexcept {
  // Unlinked while still held: a waiter that opened this file finds, once it gets the lock, that
  // the name no longer leads to its file and opens the name again (see lock_key).
  if (fd_ >= 0) {
    ::unlinkat(folder_fd_, name_.c_str(), 0);
    ::close(fd_);
  }
  if (folder_fd_ >= 0) ::close(folder_fd_);
  fd_ = folder_fd_ = -1;
}

// --- DiskCache -------------------------------------------------------------------------------

fs::path DiskCache::fallback_directory() {
  // Never relative: a relative folder would land in whatever the working folder happens to be.
  fs::path tmp = getenv_string("TMPDIR");
  if (!tmp.is_absolute()) tmp = "/tmp";
  return tmp / ("kiln-cache-" + std::to_string(::geteuid()));
}

fs::path DiskCache::default_directory() {
  if (std::string dir = getenv_string("KILN_CACHE_DIR"); !dir.empty()) return dir;
  if (std::string xdg = getenv_string("XDG_CACHE_HOME"); !xdg.empty()) return fs::path(xdg) / "kiln";
  if (std::string home = getenv_string("HOME"); !home.empty()) return fs::path(home) / ".cache" / "kiln";
  return fallback_directory();
}

DiskCache::DiskCache(DiskCacheOptions options)
    : directory_(options.directory.empty() ? default_directory() : options.directory),
      max_bytes_(options.max_bytes ? options.max_bytes : default_max_bytes()) {
  std::error_code ec;
  if (fs::path absolute = fs::absolute(directory_, ec); !ec) directory_ = absolute.lexically_normal();
  OpenedFolder folder = open_cache_folder(directory_, false);
  if (!folder.fd) {
    const fs::path fallback = fallback_directory();
    OpenedFolder private_folder = open_cache_folder(fallback, true);
    if (!private_folder.fd)
      throw Error(Errc::invalid_argument, "kernel cache folder '" + directory_.string() + "' is not usable (" +
                                              folder.why + ") and neither is the fallback '" + fallback.string() +
                                              "' (" + private_folder.why + ")");
    warn("kernel cache folder '" + directory_.string() + "' is " +
         (folder.unsafe ? "not safe to use (" : "not writable (") + folder.why + "); using '" + fallback.string() +
         "' instead (set KILN_CACHE_DIR to choose another)");
    folder = std::move(private_folder);
    fell_back_ = true;
  }
  directory_ = folder.path;
  fd_ = folder.fd.release();
}

DiskCache::~DiskCache() {
  if (fd_ >= 0) ::close(fd_);
}

fs::path DiskCache::entry_path(const CacheKey& key) const {
  std::string hex = key.hex();
  return directory_ / "entries" / hex.substr(0, 2) / (hex + std::string(kEntrySuffix));
}

std::optional<Artifact> DiskCache::load(const CacheKey& key) { return load(key, true); }

std::optional<Artifact> DiskCache::recheck(const CacheKey& key) { return load(key, false); }

void DiskCache::bad_entry(int folder_fd, const std::string& name, const std::string& where, const std::string& why) {
  corrupt_.fetch_add(1, std::memory_order_relaxed);
  detail::remove_at(folder_fd, name);  // another process may have removed it already: fine
  warn("corrupt cache entry '" + where + "' (" + why + "): removed, will be rebuilt");
}

std::optional<Artifact> DiskCache::load(const CacheKey& key, bool count_miss) {
  const std::string hex = key.hex();
  const std::string folder = "entries/" + hex.substr(0, 2), name = hex + std::string(kEntrySuffix);
  auto miss = [&] {
    if (count_miss) misses_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  };
  UniqueFd dir = detail::open_folder_at(fd_, folder);
  if (!dir) {
    if (errno == ENOENT) return miss();
    // entries/<ab> is a link or a file: never followed; removed as a name so the entry can be written.
    if (UniqueFd entries = detail::open_folder_at(fd_, "entries"))
      bad_entry(entries.get(), hex.substr(0, 2), (directory_ / folder).string(), "not a folder");
    else
      warn("'" + (directory_ / "entries").string() + "' is not a folder (a symbolic link?): entries not read");
    return miss();
  }
  detail::ReadFile file = detail::read_regular_at(dir.get(), name, max_bytes_);
  const std::string path = (directory_ / folder / name).string();
  if (file.status == detail::ReadFile::missing) return miss();
  std::string why = file.why;
  std::optional<ArtifactContents> contents;
  if (file.status == detail::ReadFile::ok) contents = detail::decode_entry(file.bytes, key, why);
  if (!contents) {
    bad_entry(dir.get(), name, path, why);
    return miss();
  }
  contents->diagnostics = parse_nvrtc_log(contents->log);
  ::utimensat(dir.get(), name.c_str(), nullptr, AT_SYMLINK_NOFOLLOW);  // least recently used is judged by mtime
  hits_.fetch_add(1, std::memory_order_relaxed);
  return Artifact(std::move(*contents), Origin::disk);
}

namespace {

// The folder-wide lock (flock on <dir>/usage); not held when it cannot be had (then the work is
// done anyway: the cap is an approximation, never a reason to fail).
struct UsageLock {
  UniqueFd fd;
  bool held = false;
};

UsageLock lock_usage(int root, std::string& trouble) {
  UsageLock l;
  for (int attempt = 0; attempt < 2 && !l.fd; ++attempt) {
    l.fd.reset(::openat(root, kUsageFile, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644));
    struct stat st {};
    if (l.fd && ::fstat(l.fd.get(), &st) == 0 && S_ISREG(st.st_mode)) break;
    // A link, FIFO or folder squats the name: removed as a name, then made again.
    l.fd.reset();
    detail::remove_at(root, kUsageFile);
  }
  if (!l.fd) {
    trouble = std::string("cannot open the folder lock '") + kUsageFile + "': " + std::strerror(errno);
    return l;
  }
  const detail::LockOutcome got = detail::lock_within(l.fd.get(), std::chrono::milliseconds(kUsageLockWait));
  l.held = got == detail::LockOutcome::acquired || got == detail::LockOutcome::acquired_after_wait;
  if (!l.held) trouble = "another process held the folder lock for more than 10 s; went on without it";
  return l;
}

}  // namespace

void DiskCache::store(const Artifact& artifact) {
  const std::string hex = artifact.key().hex();
  const fs::path path = entry_path(artifact.key());
  const std::string name = path.filename().string();
  const std::string bytes = detail::encode_entry(artifact);
  if (bytes.size() > max_bytes_) {
    oversized_.fetch_add(1, std::memory_order_relaxed);
    warn("cache entry for '" + artifact.program_name() + "' (" + hex + ") is " + std::to_string(bytes.size()) +
         " bytes, larger than the cache's size cap of " + std::to_string(max_bytes_) +
         " bytes: not written (raise KILN_CACHE_MAX_BYTES or DiskCacheOptions::max_bytes)");
    return;
  }
  UniqueFd entries = detail::open_folder_at(fd_, "entries");
  if (!entries) {
    warn("cannot write cache entry '" + path.string() + "': '" + (directory_ / "entries").string() +
         "' is not a folder (a symbolic link?)");
    return;
  }
  UniqueFd dir = detail::make_folder_at(entries.get(), hex.substr(0, 2), 0755);
  if (!dir && (errno == ELOOP || errno == ENOTDIR)) {  // a link or file squats the name
    detail::remove_at(entries.get(), hex.substr(0, 2));
    dir = detail::make_folder_at(entries.get(), hex.substr(0, 2), 0755);
  }
  if (!dir) {
    warn("cannot create a cache entry in '" + path.parent_path().string() + "': " + std::strerror(errno));
    return;
  }
  // Account, evict, write and rename under the folder lock: writers in other processes see each
  // other's bytes and the entry takes room only once room was made, so the folder stays under the
  // cap however many write at once. Writes are rare (each follows a compile) and short next to it.
  std::string trouble;
  UsageLock lock = lock_usage(fd_, trouble);
  if (!trouble.empty()) warn(trouble);
  const std::uint64_t size = bytes.size();
  UsageRecord record = lock.fd ? read_usage(lock.fd.get()) : UsageRecord{};
  const bool rescan = !record.valid || record.bytes + size > max_bytes_ || (record.writes + 1) % kRescanEveryWrites == 0;
  std::uint64_t total = record.bytes;
  if (rescan) {  // evicts only when the entry would not fit; then down to 90% of the cap with it
    PruneResult ignored;
    const std::uint64_t target = max_bytes_ - max_bytes_ / 10;
    evict_to(target > size ? target - size : 0, /*verify=*/false, ignored, total, /*only_if_over=*/max_bytes_ - size);
  }
  // The temporary file sits in the entry's folder so renameat() is atomic (same file system).
  const std::string temp = detail::temporary_name(name);
  UniqueFd fd(::openat(dir.get(), temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  int err = errno;
  bool written = false;
  if (fd) {
    ::fchmod(fd.get(), 0644);
    // No fsync: it costs milliseconds per compile on a VM disk (more than the compile of a small
    // kernel), and is not needed for integrity: every read checks the entry's length and checksum,
    // so an entry torn by a crash is found, removed and rebuilt like any corrupt one.
    written = write_all(fd.get(), bytes);
    err = errno;
    fd.reset();
    if (written && ::renameat(dir.get(), temp.c_str(), dir.get(), name.c_str()) != 0) {
      written = false;
      err = errno;
    }
    if (!written) ::unlinkat(dir.get(), temp.c_str(), 0);
  }
  if (!written) {
    warn("cannot write cache entry '" + path.string() + "': " + std::strerror(err));
    if (lock.fd) write_usage(lock.fd.get(), total, record.writes);
    return;
  }
  if (lock.fd) write_usage(lock.fd.get(), total + size, record.writes + 1);
  writes_.fetch_add(1, std::memory_order_relaxed);
}

// Scans the folder; removes stale temporary files (and with `verify`, bad entries); then, when the
// folder holds more than `only_if_over` bytes, removes least recently used files until it holds at
// most `limit`. `total` receives the bytes left. The caller holds the folder lock if it can.
void DiskCache::evict_to(std::uint64_t limit, bool verify, PruneResult& result, std::uint64_t& total,
                         std::uint64_t only_if_over) {
  std::vector<std::string> skipped;
  std::vector<CacheFile> files = scan(fd_, &skipped);
  for (const std::string& sub : skipped)
    warn("'" + (directory_ / sub).string() + "' is not a folder (a symbolic link?): nothing in it is counted or removed");
  std::vector<CacheFile> kept;
  total = 0;
  for (CacheFile& f : files) {
    const std::string where = (directory_ / f.folder / f.name).string();
    if (f.kind == CacheFile::temp && age_seconds(f.st) > kStaleSeconds) {
      if (remove_file(fd_, f)) ++result.stale_temp_removed;
      continue;
    }
    const bool under_entries = f.folder.starts_with("entries");
    if (verify && under_entries && f.kind != CacheFile::temp) {
      std::string why;
      if (f.kind == CacheFile::odd) {
        why = std::string(detail::file_type_name(f.st.st_mode)) + ", not a regular file";
      } else if (f.kind == CacheFile::foreign) {
        why = "not named like an entry";
      } else {
        UniqueFd folder = detail::open_folder_at(fd_, f.folder);
        detail::ReadFile file = folder ? detail::read_regular_at(folder.get(), f.name, max_bytes_) : detail::ReadFile{};
        if (file.status == detail::ReadFile::missing) continue;  // vanished meanwhile
        why = file.why;
        bool good = false;
        if (file.status == detail::ReadFile::ok) {
          try {
            const std::string hex = f.name.substr(0, f.name.size() - kEntrySuffix.size());
            good = detail::decode_entry(file.bytes, CacheKey::from_hex(hex), why).has_value();
          } catch (const Error&) {
            why = "file name is not a key";
          }
        }
        if (good) why.clear();
      }
      if (!why.empty()) {
        if (remove_file(fd_, f)) ++result.corrupt_removed;
        corrupt_.fetch_add(1, std::memory_order_relaxed);
        warn("corrupt cache entry '" + where + "' (" + why + "): removed");
        continue;
      }
    }
    total += f.bytes();
    if (f.kind != CacheFile::temp && f.kind != CacheFile::odd) kept.push_back(std::move(f));
  }
  if (total <= only_if_over) return;
  std::sort(kept.begin(), kept.end(), [](const CacheFile& a, const CacheFile& b) { return a.older(b); });
  for (const CacheFile& f : kept) {
    if (total <= limit) break;
    if (remove_file(fd_, f)) {
      ++result.removed_files;
      result.removed_bytes += f.bytes();
      evictions_.fetch_add(1, std::memory_order_relaxed);
    }
    total -= f.bytes();  // gone either way: removed here or by another process
  }
}

PruneResult DiskCache::prune(std::optional<std::uint64_t> max_bytes, bool verify) {
  const std::uint64_t limit = max_bytes.value_or(max_bytes_);
  PruneResult result;
  std::string trouble;
  UsageLock lock = lock_usage(fd_, trouble);
  if (!trouble.empty()) warn(trouble);
  std::uint64_t total = 0;
  evict_to(limit, verify, result, total, limit);
  sweep_locks();
  if (lock.fd) write_usage(lock.fd.get(), total, read_usage(lock.fd.get()).writes);
  return result;
}

std::uint64_t DiskCache::clear() {
  std::string trouble;
  UsageLock lock = lock_usage(fd_, trouble);
  if (!trouble.empty()) warn(trouble);
  std::uint64_t removed = 0;
  std::vector<std::string> skipped;
  for (const CacheFile& f : scan(fd_, &skipped)) {
    if (UniqueFd folder = detail::open_folder_at(fd_, f.folder)) removed += detail::remove_at(folder.get(), f.name);
  }
  for (const std::string& sub : skipped) {
    std::string text = "'";
    text += (directory_ / sub).string();
    text += "' is not a folder (a symbolic link?): not cleared, nothing removed in it";
    warn(std::move(text));
  }
  sweep_locks();
  if (lock.fd) write_usage(lock.fd.get(), 0, read_usage(lock.fd.get()).writes);
  return removed;
}

// Removes lock files no one holds that are older than an hour (left by killed holders). A lock
// file someone holds, or just opened, is left alone or caught by its holder's re-check.
void DiskCache::sweep_locks() {
  UniqueFd locks = detail::open_folder_at(fd_, "locks");
  if (!locks) return;
  for (const detail::FoundFile& f : detail::walk_folder(locks.get(), 0)) {
    if (!S_ISREG(f.st.st_mode)) {
      detail::remove_at(locks.get(), f.name);
      continue;
    }
    if (age_seconds(f.st) <= kStaleSeconds) continue;
    UniqueFd fd(::openat(locks.get(), f.name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat held {}, named {};
    if (fd && detail::lock_within(fd.get(), std::chrono::milliseconds(0)) == detail::LockOutcome::acquired &&
        ::fstat(fd.get(), &held) == 0 && ::fstatat(locks.get(), f.name.c_str(), &named, AT_SYMLINK_NOFOLLOW) == 0 &&
        held.st_ino == named.st_ino && held.st_dev == named.st_dev)
      ::unlinkat(locks.get(), f.name.c_str(), 0);  // while held, like a holder does
  }
}

DiskUsage DiskCache::usage() const {
  // Under the folder lock: evictions and renames happen under it, so the scan sees one moment of
  // the folder rather than a smear of one (an entry evicted behind the walk, another added ahead).
  std::string trouble;
  const UsageLock lock = lock_usage(fd_, trouble);
  DiskUsage u;
  for (const CacheFile& f : scan(fd_)) {
    switch (f.kind) {
      case CacheFile::entry:
        ++u.entries;
        u.entry_bytes += f.bytes();
        break;
      case CacheFile::temp:
      case CacheFile::foreign:
        u.entry_bytes += f.bytes();
        break;
      case CacheFile::pch:
        ++u.pch_files;
        u.pch_bytes += f.bytes();
        break;
      case CacheFile::odd: break;
    }
  }
  return u;
}

KeyLock DiskCache::lock_key(const CacheKey& key, std::chrono::milliseconds max_wait) {
  using clock = std::chrono::steady_clock;
  KeyLock lock;
  UniqueFd locks = detail::open_folder_at(fd_, "locks");
  if (!locks) return lock;
  const std::string name = key.hex() + std::string(kLockSuffix);
  const auto start = clock::now(), deadline = start + max_wait;
  bool waited = false;
  for (int attempt = 0; attempt < 64; ++attempt) {
    UniqueFd fd(::openat(locks.get(), name.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644));
    struct stat st {};
    if (!fd && errno != ELOOP) return lock;  // read-only folder: compile without the lock
    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
      detail::remove_at(locks.get(), name);  // a link, FIFO or folder squats the name
      continue;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    const detail::LockOutcome got = detail::lock_within(fd.get(), std::max(left, std::chrono::milliseconds(0)));
    if (got == detail::LockOutcome::failed) return lock;
    if (got == detail::LockOutcome::timed_out) {
      lock_timeouts_.fetch_add(1, std::memory_order_relaxed);
      lock.state_ = KeyLockState::timed_out;
      warn("waited " + std::to_string(max_wait.count()) + " ms for another process compiling " + key.hex() +
           " (lock '" + (directory_ / "locks" / name).string() + "'): compiling here as well");
      return lock;
    }
    waited = waited || got == detail::LockOutcome::acquired_after_wait;
    // The holder unlinks the file before releasing it: if the name now leads elsewhere (or
    // nowhere), this lock guards nothing; open the name again.
    struct stat now {};
    if (::fstatat(locks.get(), name.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0 || now.st_ino != st.st_ino ||
        now.st_dev != st.st_dev) {
      waited = true;
      continue;
    }
    if (waited) lock_waits_.fetch_add(1, std::memory_order_relaxed);
    lock.state_ = waited ? KeyLockState::waited : KeyLockState::acquired;
    lock.folder_fd_ = locks.release();
    lock.fd_ = fd.release();
    lock.name_ = name;
    return lock;
  }
  return lock;
}

bool DiskCache::make_pch_folder(const std::string& name, std::string& why) {
  UniqueFd pch = detail::open_folder_at(fd_, "pch");
  UniqueFd sub = pch ? detail::make_folder_at(pch.get(), name, 0755) : UniqueFd{};
  if (!sub) why = std::strerror(errno);
  return static_cast<bool>(sub);
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
