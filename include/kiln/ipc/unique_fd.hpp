// ipc::UniqueFd: an owned file descriptor. Move-only; closes what it holds exactly once, on
// destruction or reset(); release() hands the number back without closing it. A moved-from owner
// holds nothing (-1), so a descriptor can never be closed twice through kiln.
//
// Thread safety: a UniqueFd is a plain value used by one thread at a time; the descriptor it holds
// may of course be used from any thread.
#pragma once

#include <utility>

namespace kiln::ipc {

class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd < 0 ? -1 : fd) {}
  ~UniqueFd() { reset(); }

  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }

  // Gives up ownership: the caller closes the returned descriptor (-1 when empty).
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
  // Closes the descriptor held (if any) and takes `fd`. close() is not retried on EINTR: Linux
  // has released the number by then, and a retry could close a descriptor another thread opened.
  void reset(int fd = -1) noexcept;

  // A second descriptor for the same open file, close-on-exec. Throws kiln::Error.
  UniqueFd duplicate() const;

 private:
  int fd_ = -1;
};

}  // namespace kiln::ipc
