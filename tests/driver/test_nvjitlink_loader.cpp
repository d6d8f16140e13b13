// nvJitLink found and loaded at run time like NVRTC: the real library from the toolkit, and the
// errors for a wrong KILN_NVJITLINK_PATH, which must never fall back to another copy.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "kiln/driver/error.hpp"
#include "kiln/driver/nvjitlink_api.hpp"
#include "kiln/driver/nvrtc_api.hpp"
#include "support/process.hpp"

namespace {

namespace fs = std::filesystem;
using kiln::driver::NvJitLinkSearch;

TEST(NvJitLinkLoader, LoadsTheToolkitsLibraryAndKnowsItsVersion) {
  KILN_SKIP_UNDER_EMULATOR("the toolkit on this machine (/usr/local/cuda) is x86_64's: an aarch64 process cannot load its NVRTC or nvJitLink, and there is no arm64 nvJitLink (CUDA 11.8 has none)");
  const auto& lib = kiln::driver::nvjitlink_library();
  EXPECT_TRUE(lib.library.loaded);
  EXPECT_NE(lib.library.path.find("libnvJitLink.so"), std::string::npos) << lib.library.path;
  EXPECT_GE(lib.version.major, 12);
  EXPECT_EQ(lib.library.version, std::to_string(lib.version.major) + "." + std::to_string(lib.version.minor));
  EXPECT_TRUE(lib.api.has("nvJitLinkVersion"));
  unsigned major = 0, minor = 0;
  ASSERT_EQ(lib.api.nvJitLinkVersion(&major, &minor), NVJITLINK_SUCCESS);
  EXPECT_EQ(static_cast<int>(major), lib.version.major);
  // A handle can be made and destroyed through the resolved (versioned) entry points.
  nvJitLinkHandle handle = nullptr;
  const char* options[] = {"-arch=sm_90"};
  ASSERT_EQ(lib.api.nvJitLinkCreate(&handle, 1, options), NVJITLINK_SUCCESS);
  EXPECT_EQ(lib.api.nvJitLinkDestroy(&handle), NVJITLINK_SUCCESS);
  EXPECT_EQ(kiln::driver::nvjitlink_info().path, lib.library.path);
}

TEST(NvJitLinkLoader, BogusExplicitPathNamesThePathAndDoesNotFallBack) {
  NvJitLinkSearch search;
  search.explicit_path = "/nonexistent/kiln/libnvJitLink.so.99";
  search.toolkit_roots = {kiln::driver::built_toolkit_root()};
  try {
    kiln::driver::open_nvjitlink(search);
    FAIL() << "a bogus KILN_NVJITLINK_PATH loaded something";
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(kiln::Errc::nvjitlink_not_found)) << e.what();
    const std::string what = e.what();
    EXPECT_NE(what.find("KILN_NVJITLINK_PATH=/nonexistent/kiln/libnvJitLink.so.99"), std::string::npos) << what;
    EXPECT_NE(what.find("no such file"), std::string::npos) << what;
    EXPECT_NE(what.find("KILN_NVJITLINK_PATH to the library file"), std::string::npos) << "no hint: " << what;
    EXPECT_EQ(e.detail().find("/lib64/"), std::string::npos) << "fell back: " << what;
  }
}

TEST(NvJitLinkLoader, ExplicitPathThatIsNotALibrary) {
  const fs::path junk = fs::temp_directory_path() / "kiln-not-a-nvjitlink.so";
  std::ofstream(junk) << "not an ELF file";
  NvJitLinkSearch search;
  search.explicit_path = junk.string();
  try {
    kiln::driver::open_nvjitlink(search);
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(kiln::Errc::nvjitlink_not_found));
    EXPECT_NE(std::string(e.what()).find(junk.string()), std::string::npos) << e.what();
  }
  fs::remove(junk);
}

TEST(NvJitLinkLoader, ALibraryWithoutTheEntryPointsIsRefused) {
  // NVRTC is a real shared library, but not nvJitLink.
  NvJitLinkSearch search;
  search.explicit_path = kiln::driver::nvrtc_library().library.path;
  try {
    kiln::driver::open_nvjitlink(search);
    FAIL() << "NVRTC was taken for nvJitLink";
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(kiln::Errc::symbol_missing)) << e.what();
    EXPECT_NE(std::string(e.what()).find("nvJitLinkCreate"), std::string::npos) << e.what();
  }
}

TEST(NvJitLinkLoader, ExplicitFolderIsSearchedWithTheSonames) {
  KILN_SKIP_UNDER_EMULATOR("the toolkit on this machine (/usr/local/cuda) is x86_64's: an aarch64 process cannot load its NVRTC or nvJitLink, and there is no arm64 nvJitLink (CUDA 11.8 has none)");
  const auto& found = kiln::driver::nvjitlink_library();
  NvJitLinkSearch search;
  search.explicit_path = fs::path(found.library.path).parent_path().string();
  const auto candidates = kiln::driver::nvjitlink_candidates(search);
  ASSERT_EQ(candidates.size(), 3u);
  EXPECT_EQ(fs::path(candidates[0]).filename(), "libnvJitLink.so.13");
  EXPECT_EQ(fs::path(candidates[1]).filename(), "libnvJitLink.so.12");
  const auto opened = kiln::driver::open_nvjitlink(search);
  EXPECT_EQ(opened.library.path, found.library.path);
}

TEST(NvJitLinkLoader, SearchOrderWithoutExplicitPath) {
  NvJitLinkSearch search;
  search.toolkit_roots = {"/opt/a", "/opt/b"};
  const auto candidates = kiln::driver::nvjitlink_candidates(search);
  ASSERT_FALSE(candidates.empty());
  EXPECT_EQ(candidates.front(), "/opt/a/lib64/libnvJitLink.so.13");
  EXPECT_EQ(candidates[candidates.size() - 2], "libnvJitLink.so.13");  // the loader's own search last
  EXPECT_EQ(candidates.back(), "libnvJitLink.so.12");
  search.use_loader_path = false;
  EXPECT_NE(kiln::driver::nvjitlink_candidates(search).back().find("/opt/b/"), std::string::npos);
}

}  // namespace
