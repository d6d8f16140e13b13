#include "jit/detail/cache_files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>
#include <thread>
#include <utility>

namespace kiln::jit::detail {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

int UniqueFd::release() noexcept { return std::exchange(fd_, -1); }

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

std::string_view file_type_name(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

namespace {

constexpr int kFolderFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

int open_one_folder(int dir, const std::string& name) {
  int fd;
  do fd = ::openat(dir, name.c_str(), kFolderFlags);
  while (fd < 0 && errno == EINTR);
  return fd;
}

void walk(int dir, const std::string& folder, int depth, int max_depth, std::vector<FoundFile>& out) {
  UniqueFd listing(::dup(dir));
  if (!listing) return;
  DIR* d = ::fdopendir(listing.get());
  if (!d) return;
  listing.release();  // owned by d now
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st {};
    if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // vanished
    if (S_ISDIR(st.st_mode) && depth < max_depth) {
      UniqueFd sub(open_one_folder(dir, name));
      if (sub) walk(sub.get(), folder.empty() ? name : folder + "/" + name, depth + 1, max_depth, out);
      continue;
    }
    out.push_back(FoundFile{folder, name, st});
  }
  ::closedir(d);
}

std::uint64_t remove_tree(int dir, const std::string& name, int depth) {
  struct stat st {};
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return 0;
  if (!S_ISDIR(st.st_mode)) return ::unlinkat(dir, name.c_str(), 0) == 0 ? 1 : 0;
  std::uint64_t removed = 0;
  constexpr int kMaxDepth = 32;  // deeper than anything kiln or NVRTC makes
  if (depth < kMaxDepth) {
    UniqueFd sub(open_one_folder(dir, name));
    if (sub) {
      for (const FoundFile& f : walk_folder(sub.get(), 0)) removed += remove_tree(sub.get(), f.name, depth + 1);
    }
  }
  return removed + (::unlinkat(dir, name.c_str(), AT_REMOVEDIR) == 0 ? 1 : 0);
}

}  // namespace

UniqueFd open_folder_at(int dir, std::string_view relative) {
  UniqueFd current;
  int at = dir;
  while (!relative.empty()) {
    const std::size_t slash = relative.find('/');
    const std::string part(relative.substr(0, slash));
    relative = slash == std::string_view::npos ? std::string_view{} : relative.substr(slash + 1);
    if (part.empty()) continue;
    UniqueFd next(open_one_folder(at, part));
    if (!next) return {};
    current = std::move(next);
    at = current.get();
  }
  if (!current) current.reset(::fcntl(dir, F_DUPFD_CLOEXEC, 0));
  return current;
}

UniqueFd make_folder_at(int dir, const std::string& name, mode_t mode) {
  const bool created = ::mkdirat(dir, name.c_str(), mode) == 0;
  UniqueFd fd(open_one_folder(dir, name));
  if (fd && created) ::fchmod(fd.get(), mode);  // the umask may have taken bits away
  return fd;
}

ReadFile read_regular_at(int dir, const std::string& name, std::uint64_t max_bytes) {
  ReadFile r;
  struct stat st {};
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    r.status = errno == ENOENT ? ReadFile::missing : ReadFile::unreadable;
    r.why = std::strerror(errno);
    return r;
  }
  // Checked before opening: opening a device can have effects of its own.
  if (!S_ISREG(st.st_mode)) {
    r.status = ReadFile::not_regular;
    r.why = std::string(file_type_name(st.st_mode)) + ", not a regular file";
    return r;
  }
  int raw;
  do raw = ::openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  while (raw < 0 && errno == EINTR);
  UniqueFd fd(raw);
  if (!fd) {
    r.status = errno == ENOENT ? ReadFile::missing : errno == ELOOP ? ReadFile::not_regular : ReadFile::unreadable;
    r.why = errno == ELOOP ? "a symbolic link, not a regular file" : std::strerror(errno);
    return r;
  }
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {  // replaced between the two looks
    r.status = ReadFile::not_regular;
    r.why = std::string(file_type_name(st.st_mode)) + ", not a regular file";
    return r;
  }
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    r.status = ReadFile::too_large;
    r.why = std::to_string(st.st_size) + " bytes, more than the cache's cap of " + std::to_string(max_bytes);
    return r;
  }
  r.bytes.resize(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < r.bytes.size()) {
    ssize_t n = ::read(fd.get(), r.bytes.data() + done, r.bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      r.status = ReadFile::unreadable;
      r.why = std::strerror(errno);
      r.bytes.clear();
      return r;
    }
    if (n == 0) break;  // shrank while reading: the entry's checks see a truncated entry
    done += static_cast<std::size_t>(n);
  }
  r.bytes.resize(done);
  r.status = ReadFile::ok;
  return r;
}

std::uint64_t remove_at(int dir, const std::string& name) { return remove_tree(dir, name, 0); }

std::vector<FoundFile> walk_folder(int dir, int max_depth) {
  std::vector<FoundFile> out;
  walk(dir, "", 0, max_depth, out);
  return out;
}

LockOutcome lock_within(int fd, std::chrono::milliseconds max_wait) {
  using clock = std::chrono::steady_clock;
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return LockOutcome::acquired;
  if (errno != EWOULDBLOCK && errno != EINTR) return LockOutcome::failed;
  const auto deadline = clock::now() + max_wait;
  std::chrono::microseconds pause(500);
  for (;;) {
    if (clock::now() >= deadline) return LockOutcome::timed_out;
    std::this_thread::sleep_for(pause);
    pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(10));
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return LockOutcome::acquired_after_wait;
    if (errno != EWOULDBLOCK && errno != EINTR) return LockOutcome::failed;
  }
}

std::string temporary_name(std::string_view stem) {
  static std::atomic<std::uint64_t> counter{0};
  thread_local std::mt19937_64 random{std::random_device{}()};
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on "-" + std::to_string(...).
  std::string name = ".tmp-";
  name.append(stem);
  for (std::uint64_t part : {static_cast<std::uint64_t>(::getpid()), counter.fetch_add(1), random() % 1000000}) {
    name += '-';
    name += std::to_string(part);
  }
  return name;
}

}  // namespace kiln::jit::detail
