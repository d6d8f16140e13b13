// Link-safe file operations inside the disk cache's folder. Everything is relative to a folder's
// descriptor and no operation follows a symbolic link: folders are opened one component at a time
// with O_NOFOLLOW, files with O_NOFOLLOW | O_NONBLOCK (a FIFO cannot block the open) and checked to
// be regular with fstat, names are removed with unlinkat (which removes a link, never its target).
//
// Thread safety: free functions over descriptors; UniqueFd is a move-only value.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::jit::detail {

// Owns one file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  int release() noexcept;
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

// "a symbolic link", "a FIFO", "a folder", ...: what a name is, for messages.
std::string_view file_type_name(mode_t mode);

// Opens the folder at `relative` ("entries/ab") under `dir`, one component at a time with
// O_NOFOLLOW. Invalid when a component is missing (errno ENOENT), a link (ELOOP) or not a folder
// (ENOTDIR).
UniqueFd open_folder_at(int dir, std::string_view relative);

// Creates `name` under `dir` if missing (mode `mode`, whatever the umask), then opens it as above.
UniqueFd make_folder_at(int dir, const std::string& name, mode_t mode);

struct ReadFile {
  enum Status { ok, missing, not_regular, unreadable, too_large } status = missing;
  std::string bytes;  // ok: the contents
  std::string why;    // otherwise: what is wrong, for messages
};
// Reads the regular file `name` in `dir`; refuses anything else (link, FIFO, folder, device) and
// files larger than `max_bytes` without reading them.
ReadFile read_regular_at(int dir, const std::string& name, std::uint64_t max_bytes);

// Removes `name` from `dir` without following links: a folder with everything below it (links
// inside are removed as names), anything else with unlinkat. Returns how many names went (a
// folder counts as one, plus what was in it).
std::uint64_t remove_at(int dir, const std::string& name);

struct FoundFile {
  std::string folder;  // relative to the walked folder: "" or "ab" or "fixed-address/x"
  std::string name;
  struct stat st;      // lstat-style: a link is reported as a link
};
// Every name under `dir` that is not a folder, and folders found `max_depth` levels down (which
// are reported, not entered). Links are reported, never followed; names that vanish are skipped.
std::vector<FoundFile> walk_folder(int dir, int max_depth);

enum class LockOutcome { acquired, acquired_after_wait, timed_out, failed };
// flock(LOCK_EX) on `fd` within `max_wait`: tried at once, then polled with back-off (0.5 ms up to
// 10 ms between tries), so a waiter sees a released lock within about 10 ms.
LockOutcome lock_within(int fd, std::chrono::milliseconds max_wait);

// A name no other process picks at the same moment: ".tmp-<stem>-<pid>-<counter>-<random>".
std::string temporary_name(std::string_view stem);

}  // namespace kiln::jit::detail
