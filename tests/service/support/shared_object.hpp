// A POSIX shared memory object made by the test, as a co-located client of kilnd makes one:
// created (O_EXCL), sized, mapped here; unlinked and unmapped at the end.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace kiln::testing {

class SharedObject {
 public:
  explicit SharedObject(std::size_t bytes)
      : name_("/kiln-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++)), bytes_(bytes) {
    fd_ = ::shm_open(name_.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    EXPECT_GE(fd_, 0) << std::strerror(errno);
    EXPECT_EQ(::ftruncate(fd_, static_cast<off_t>(bytes)), 0);
    data_ = static_cast<unsigned char*>(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0));
    EXPECT_NE(data_, MAP_FAILED);
  }
  ~SharedObject() {
    ::munmap(data_, bytes_);
    ::close(fd_);
    ::shm_unlink(name_.c_str());
  }
  const std::string& name() const { return name_; }
  unsigned char* data() const { return data_; }
  void truncate(std::size_t bytes) { ASSERT_EQ(::ftruncate(fd_, static_cast<off_t>(bytes)), 0); }

 private:
  static inline int counter_ = 0;
  std::string name_;
  std::size_t bytes_;
  int fd_ = -1;
  unsigned char* data_ = nullptr;
};

}  // namespace kiln::testing
