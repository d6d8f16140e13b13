// NVRTC is real on every machine kiln builds on: these tests load it for real.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/driver/nvrtc_api.hpp"
#include "support/nvrtc_compile.hpp"
#include "support/process.hpp"

namespace {

namespace fs = std::filesystem;
using kiln::driver::NvrtcSearch;

TEST(NvrtcLoader, FoundWithVersionAndArchitectures) {
  const auto& lib = kiln::driver::nvrtc_library();
  EXPECT_TRUE(lib.library.loaded);
  EXPECT_TRUE(fs::path(lib.library.path).is_absolute()) << lib.library.path;
  EXPECT_TRUE(fs::exists(lib.library.path));
  EXPECT_NE(lib.library.path.find("libnvrtc.so"), std::string::npos);
  // The headers kiln was built with name the same major version as the library found here (or the
  // run names the toolkit it points kiln at: KILN_TEST_NVRTC_MAJOR).
  EXPECT_EQ(lib.version.major, kiln::testing::expected_nvrtc_major());
  EXPECT_EQ(lib.library.version, std::to_string(lib.version.major) + "." + std::to_string(lib.version.minor));
  EXPECT_FALSE(lib.supported_archs.empty());
  EXPECT_NE(std::find(lib.supported_archs.begin(), lib.supported_archs.end(), 90), lib.supported_archs.end());
}

TEST(NvrtcLoader, LoadedOnceAndSharedByThreads) {
  const kiln::driver::NvrtcApi* seen[8] = {};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) threads.emplace_back([&seen, i] { seen[i] = &kiln::driver::nvrtc(); });
  for (auto& t : threads) t.join();
  for (auto* p : seen) EXPECT_EQ(p, seen[0]);
}

TEST(NvrtcLoader, CompilesThroughTheTable) {
  const auto& api = kiln::driver::nvrtc();
  nvrtcProgram prog = nullptr;
  ASSERT_EQ(api.nvrtcCreateProgram(&prog, "extern \"C\" __global__ void k(int* p) { *p = 1; }", "k.cu", 0,
                                   nullptr, nullptr),
            NVRTC_SUCCESS);
  const char* opts[] = {"--gpu-architecture=sm_90"};
  EXPECT_EQ(api.nvrtcCompileProgram(prog, 1, opts), NVRTC_SUCCESS);
  size_t size = 0;
  EXPECT_EQ(api.nvrtcGetCUBINSize(prog, &size), NVRTC_SUCCESS);
  EXPECT_GT(size, 0u);
  api.nvrtcDestroyProgram(&prog);
}

TEST(NvrtcLoader, BogusExplicitPathNamesThePath) {
  NvrtcSearch search;
  search.explicit_path = "/nonexistent/kiln/libnvrtc.so.99";
  search.toolkit_roots = {"/usr/local/cuda"};  // must not be used as a fall-back
  try {
    kiln::driver::open_nvrtc(search);
    FAIL() << "a bogus KILN_NVRTC_PATH loaded something";
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(kiln::Errc::nvrtc_not_found));
    const std::string what = e.what();
    EXPECT_NE(what.find("KILN_NVRTC_PATH=/nonexistent/kiln/libnvrtc.so.99"), std::string::npos) << what;
    EXPECT_NE(what.find("no such file"), std::string::npos) << what;
    EXPECT_EQ(e.detail().find("/usr/local/cuda/lib64"), std::string::npos) << "fell back: " << what;
  }
}

TEST(NvrtcLoader, ExplicitPathThatIsNotALibrary) {
  const fs::path junk = fs::temp_directory_path() / "kiln-not-a-library.so";
  std::ofstream(junk) << "not an ELF file";
  NvrtcSearch search;
  search.explicit_path = junk.string();
  try {
    kiln::driver::open_nvrtc(search);
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(kiln::Errc::nvrtc_not_found));
    EXPECT_NE(std::string(e.what()).find(junk.string()), std::string::npos) << e.what();
  }
  fs::remove(junk);
}

TEST(NvrtcLoader, ExplicitFolderIsSearched) {
  KILN_SKIP_UNLESS_NVRTC(12000, "finding NVRTC in its folder (kiln looks there for libnvrtc.so.13 and .12, not 11.8's libnvrtc.so.11.2)");
  const auto& found = kiln::driver::nvrtc_library();
  NvrtcSearch search;
  search.explicit_path = fs::path(found.library.path).parent_path().string();
  auto again = kiln::driver::open_nvrtc(search);
  EXPECT_EQ(again.library.path, found.library.path);
}

TEST(NvrtcLoader, LibraryThatLacksNvrtcSymbolsIsRefused) {
  // libm is a real shared library with none of NVRTC's entry points.
  NvrtcSearch search;
  search.explicit_path = "libm.so.6";
  try {
    kiln::driver::open_nvrtc(search);
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(kiln::Errc::symbol_missing)) << e.what();
    EXPECT_NE(std::string(e.what()).find("nvrtcGetErrorString"), std::string::npos) << e.what();
  }
}

TEST(NvrtcLoader, ToolkitRootsThenLoaderPathInOrder) {
  KILN_SKIP_UNDER_EMULATOR("the toolkit on this machine (/usr/local/cuda) is x86_64's: an aarch64 process cannot load its NVRTC or nvJitLink, and there is no arm64 nvJitLink (CUDA 11.8 has none)");
  NvrtcSearch search;
  search.toolkit_roots = {"/nonexistent/cuda-a", kiln::driver::built_toolkit_root()};
  auto lib = kiln::driver::open_nvrtc(search);
  ASSERT_TRUE(lib.library.loaded);
  ASSERT_FALSE(lib.library.tried.empty());
  EXPECT_EQ(lib.library.tried.front(), "/nonexistent/cuda-a/lib64/libnvrtc.so.13: no such file");
}

TEST(NvrtcLoader, NothingFoundListsEveryCandidate) {
  NvrtcSearch search;
  search.toolkit_roots = {"/nonexistent/cuda-b"};
  search.use_loader_path = false;
  try {
    kiln::driver::open_nvrtc(search);
    FAIL();
  } catch (const kiln::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("/nonexistent/cuda-b/lib64/libnvrtc.so.13"), std::string::npos) << what;
    EXPECT_NE(what.find("/nonexistent/cuda-b/lib64/libnvrtc.so.12"), std::string::npos) << what;
    EXPECT_FALSE(e.hint().empty());
  }
}

// locate_nvrtc answers, without loading, what open_nvrtc loads, for every kind of search.
TEST(NvrtcLoader, LocateNamesTheFileThatLoads) {
  KILN_SKIP_UNDER_EMULATOR("the toolkit on this machine (/usr/local/cuda) is x86_64's: an aarch64 process cannot load its NVRTC or nvJitLink, and there is no arm64 nvJitLink (CUDA 11.8 has none)");
  const auto& found = kiln::driver::nvrtc_library();
  std::vector<std::pair<std::string, NvrtcSearch>> searches;
  searches.emplace_back("environment", NvrtcSearch::from_environment());
  NvrtcSearch s;
  s.explicit_path = found.library.path;
  searches.emplace_back("explicit file", s);
  s.explicit_path = fs::path(found.library.path).parent_path().string();
  searches.emplace_back("explicit folder", s);
  s = {};
  s.toolkit_roots = {"/nonexistent/cuda-a", kiln::driver::built_toolkit_root()};
  searches.emplace_back("toolkit roots", s);
  s = {};
  searches.emplace_back("loader path only", s);
  for (const auto& [what, search] : searches) {
    std::optional<std::string> located = kiln::driver::locate_nvrtc(search);
    std::string loaded;
    try {
      loaded = kiln::driver::open_nvrtc(search).library.path;
    } catch (const kiln::Error&) {
    }
    EXPECT_EQ(located.value_or(""), loaded) << what;
  }
  EXPECT_EQ(kiln::driver::nvrtc_location(), found.library.path);
  EXPECT_TRUE(kiln::driver::nvrtc_loaded());
}

TEST(NvrtcLoader, LocateFindsNothingWhereNothingLoads) {
  NvrtcSearch search;
  search.explicit_path = "/nonexistent/kiln/libnvrtc.so.99";
  search.toolkit_roots = {kiln::driver::built_toolkit_root()};  // KILN_NVRTC_PATH is exclusive
  EXPECT_FALSE(kiln::driver::locate_nvrtc(search));
  search = {};
  search.toolkit_roots = {"/nonexistent/cuda-b"};
  search.use_loader_path = false;
  EXPECT_FALSE(kiln::driver::locate_nvrtc(search));
  EXPECT_EQ(kiln::driver::nvrtc_candidates(search).front(), "/nonexistent/cuda-b/lib64/libnvrtc.so.13");
}

}  // namespace
