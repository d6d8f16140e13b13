// The loader-path scan works on real folders made for the test: the files are placeholders with a
// library's name (the scan looks at names and real paths, never at contents).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "kiln/driver/environment.hpp"

namespace {

namespace fs = std::filesystem;

class TempTree : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("kiln-ldpath-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path touch(const fs::path& rel) {
    fs::create_directories((root_ / rel).parent_path());
    std::ofstream(root_ / rel) << "x";
    return root_ / rel;
  }
  fs::path root_;
};

TEST_F(TempTree, FindsEveryDistinctCopy) {
  touch("a/libcuda.so.1");
  touch("b/libcuda.so.1");
  touch("c/libcuda.so.580.1");
  fs::create_symlink(root_ / "c/libcuda.so.580.1", root_ / "c/libcuda.so.1");
  fs::create_directories(root_ / "d");
  fs::create_symlink(root_ / "a/libcuda.so.1", root_ / "d/libcuda.so.1");  // same file as a/
  auto copies = kiln::driver::find_library_copies(
      {(root_ / "a").string(), (root_ / "b").string(), (root_ / "c").string(), (root_ / "d").string(),
       (root_ / "missing").string()},
      {"libcuda.so.1"});
  ASSERT_EQ(copies.size(), 3u);
  EXPECT_EQ(copies[0], fs::canonical(root_ / "a/libcuda.so.1").string());
  EXPECT_EQ(copies[2], fs::canonical(root_ / "c/libcuda.so.580.1").string());
}

TEST_F(TempTree, ReadsLdLibraryPathThenLdSoConfWithIncludes) {
  fs::path conf = touch("etc/ld.so.conf");
  std::ofstream(conf) << "# comment\ninclude " << (root_ / "etc/ld.so.conf.d/*.conf").string() << "\n/opt/first\n";
  std::ofstream(touch("etc/ld.so.conf.d/cuda.conf")) << "/usr/local/cuda/lib64  # toolkit\n";
  auto dirs = kiln::driver::loader_search_dirs("/env/one::/env/two", conf.string());
  ASSERT_GE(dirs.size(), 4u);
  EXPECT_EQ(dirs[0], "/env/one");
  EXPECT_EQ(dirs[1], "/env/two");
  EXPECT_EQ(dirs[2], "/usr/local/cuda/lib64");
  EXPECT_EQ(dirs[3], "/opt/first");
  EXPECT_NE(std::find(dirs.begin(), dirs.end(), "/usr/lib/x86_64-linux-gnu"), dirs.end());
}

TEST_F(TempTree, MissingConfIsNotAnError) {
  auto dirs = kiln::driver::loader_search_dirs("", (root_ / "none.conf").string());
  EXPECT_FALSE(dirs.empty());
}

TEST_F(TempTree, IncludeLoopTerminates) {
  fs::path conf = touch("loop.conf");
  std::ofstream(conf) << "include " << conf.string() << "\n/opt/x\n";
  auto dirs = kiln::driver::loader_search_dirs("", conf.string());
  EXPECT_EQ(std::count(dirs.begin(), dirs.end(), "/opt/x"), 1);
}

}  // namespace
