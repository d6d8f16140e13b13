// Whole-file reads and writes for tests that plant or inspect files.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace kiln::testing {

inline std::string read_all(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_all(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

// An empty folder for the running test: <tmp>/<stem>-<pid>-<test name>, made afresh (a
// leftover from an earlier run is removed). The caller removes it at the end.
inline std::filesystem::path fresh_test_folder(const std::string& stem) {
  const auto dir = std::filesystem::temp_directory_path() /
                   (stem + "-" + std::to_string(::getpid()) + "-" +
                    ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace kiln::testing
