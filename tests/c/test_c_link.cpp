// The C ABI's device libraries and kiln_compile_and_link, with the real NVRTC and nvJitLink and no
// GPU: source and prebuilt libraries, the cache, keys that follow a library's content, link errors
// as diagnostics, and bad arguments.
#include <cstring>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "c_abi_support.hpp"

namespace {

using kiln_c_test::Error;

const char* kLibrary = "extern \"C\" __device__ float scale_add(float a, float x, float y) { return a * x + y; }\n";
const char* kOtherLibrary = "extern \"C\" __device__ float scale_add(float a, float x, float y) { return a * x - y; }\n";
const kiln_header kHeader{"scale_add.cuh", "#pragma once\nextern \"C\" __device__ float scale_add(float a, float x, float y);\n"};
const char* kCaller = R"(
#include "scale_add.cuh"
template <int N> __global__ void scaled(float* y) { y[threadIdx.x] = scale_add(N, y[threadIdx.x], 1.f); }
)";
const char* kLonely = R"(
extern "C" __device__ float nobody_defines_this(float x);
extern "C" __global__ void lonely(float* y) { y[0] = nobody_defines_this(y[0]); }
)";

struct Cache {
  std::string dir;
  kiln_cache* handle = nullptr;
  Cache() {
    char pattern[] = "/tmp/kiln-c-link-XXXXXX";
    dir = mkdtemp(pattern);
    kiln_cache_options o;
    kiln_cache_options_init(&o);
    o.disk_directory = dir.c_str();
    Error e;
    EXPECT_EQ(kiln_cache_create(&o, &handle, &e), KILN_OK) << e.text();
  }
  ~Cache() {
    kiln_cache_destroy(handle);
    std::filesystem::remove_all(dir);
  }
};

kiln_program program(const char* name, const char* source) {
  kiln_program p;
  kiln_program_init(&p);
  p.name = name;
  p.source = source;
  return p;
}

kiln_device_library* source_library(const char* source) {
  const kiln_program p = program("scale_add.cu", source);
  kiln_device_library* lib = nullptr;
  Error e;
  EXPECT_EQ(kiln_device_library_from_source(&p, &kHeader, 1, &lib, &e), KILN_OK) << e.text();
  return lib;
}

std::string key_of(const kiln_image* image) {
  char key[65] = {};
  Error e;
  EXPECT_EQ(kiln_image_key(image, key, &e), KILN_OK) << e.text();
  return key;
}

kiln_image_info info_of(const kiln_image* image) {
  kiln_image_info info{};
  info.size = sizeof info;
  Error e;
  EXPECT_EQ(kiln_image_get_info(image, &info, &e), KILN_OK) << e.text();
  return info;
}

constexpr kiln_target kCubin90{KILN_IMAGE_CUBIN, 90};

TEST(CAbiLink, AKernelLinksWithASourceLibraryIntoACubinThroughTheCache) {
  if (auto why = kiln_c_test::nvrtc_older_than(12, 0, "LTO-IR (nvrtcGetLTOIR)"); !why.empty())
    GTEST_SKIP() << why;
  Cache cache;
  kiln_device_library* lib = source_library(kLibrary);
  kiln_program p = program("caller.cu", kCaller);
  const char* expressions[] = {"scaled<3>"};
  p.name_expressions = expressions;
  p.name_expression_count = 1;
  kiln_image* image = nullptr;
  Error e;
  ASSERT_EQ(kiln_compile_and_link(cache.handle, &p, &lib, 1, kCubin90, &image, nullptr, &e), KILN_OK) << e.text();
  const kiln_image_info info = info_of(image);
  EXPECT_EQ(info.target.kind, KILN_IMAGE_CUBIN);
  EXPECT_EQ(info.target.arch, 90);
  EXPECT_EQ(info.origin, KILN_ORIGIN_COMPILED);
  const std::string cubin(static_cast<const char*>(info.data), info.data_size);
  EXPECT_EQ(cubin.substr(0, 4), "\x7f" "ELF");
  const char* lowered = nullptr;
  ASSERT_EQ(kiln_image_lowered_name(image, "scaled<3>", &lowered, &e), KILN_OK) << e.text();
  EXPECT_NE(cubin.find(lowered), std::string::npos) << lowered;

  kiln_image* again = nullptr;
  ASSERT_EQ(kiln_compile_and_link(cache.handle, &p, &lib, 1, kCubin90, &again, nullptr, &e), KILN_OK) << e.text();
  EXPECT_EQ(info_of(again).origin, KILN_ORIGIN_MEMORY);
  EXPECT_EQ(key_of(again), key_of(image));

  // Another library's content: another link, another key.
  kiln_device_library* other = source_library(kOtherLibrary);
  kiln_image* changed = nullptr;
  ASSERT_EQ(kiln_compile_and_link(cache.handle, &p, &other, 1, kCubin90, &changed, nullptr, &e), KILN_OK) << e.text();
  EXPECT_NE(key_of(changed), key_of(image));

  kiln_image_destroy(changed);
  kiln_image_destroy(again);
  kiln_image_destroy(image);
  kiln_device_library_destroy(other);
  kiln_device_library_destroy(lib);
}

TEST(CAbiLink, APrebuiltLibraryLinksIntoItsArchitectureOnly) {
  if (auto why = kiln_c_test::nvrtc_older_than(12, 0, "LTO-IR (nvrtcGetLTOIR)"); !why.empty())
    GTEST_SKIP() << why;
  Cache cache;
  // LTO-IR as `kiln compile --lto` writes it.
  const kiln_program lib_program = program("scale_add.cu", kLibrary);
  kiln_image* ltoir = nullptr;
  Error e;
  ASSERT_EQ(kiln_compile(cache.handle, &lib_program, kiln_target{KILN_IMAGE_LTOIR, 90}, &ltoir, nullptr, &e), KILN_OK)
      << e.text();
  const kiln_image_info built = info_of(ltoir);
  EXPECT_EQ(built.target.kind, KILN_IMAGE_LTOIR);
  kiln_device_library* lib = nullptr;
  ASSERT_EQ(kiln_device_library_from_ltoir("scale_add.ltoir", 90, built.data, built.data_size, &kHeader, 1, &lib, &e),
            KILN_OK)
      << e.text();
  kiln_image_destroy(ltoir);  // the library holds its own copy

  kiln_program p = program("caller.cu", kCaller);
  kiln_image* image = nullptr;
  ASSERT_EQ(kiln_compile_and_link(cache.handle, &p, &lib, 1, kCubin90, &image, nullptr, &e), KILN_OK) << e.text();
  EXPECT_EQ(info_of(image).target.kind, KILN_IMAGE_CUBIN);
  kiln_image_destroy(image);

  Error other_arch;
  EXPECT_EQ(kiln_compile_and_link(cache.handle, &p, &lib, 1, kiln_target{KILN_IMAGE_CUBIN, 80}, &image, nullptr, &other_arch),
            KILN_ERROR_KILN);
  EXPECT_EQ(other_arch.code, KILN_ERRC_INVALID_ARGUMENT);
  EXPECT_CONTAINS(other_arch.text(), "LTO-IR for sm_90");
  kiln_device_library_destroy(lib);

  kiln_device_library* empty = nullptr;
  EXPECT_EQ(kiln_device_library_from_ltoir("x.ltoir", 90, "", 0, nullptr, 0, &empty, &e), KILN_ERROR_KILN);
  EXPECT_EQ(e.code, KILN_ERRC_INVALID_ARGUMENT);
  EXPECT_EQ(empty, nullptr);
}

TEST(CAbiLink, AnUndefinedSymbolIsALinkErrorWithDiagnostics) {
  if (auto why = kiln_c_test::nvrtc_older_than(12, 0, "LTO-IR (nvrtcGetLTOIR)"); !why.empty())
    GTEST_SKIP() << why;
  Cache cache;
  kiln_device_library* lib = source_library(kLibrary);
  const kiln_program p = program("lonely.cu", kLonely);
  kiln_image* image = nullptr;
  kiln_diagnostics* diagnostics = nullptr;
  Error e;
  ASSERT_EQ(kiln_compile_and_link(cache.handle, &p, &lib, 1, kCubin90, &image, &diagnostics, &e), KILN_ERROR_KILN);
  EXPECT_EQ(image, nullptr);
  EXPECT_EQ(e.code, KILN_ERRC_LINK_FAILED);
  EXPECT_STREQ(e.name, "KILN_ERROR_LINK_FAILED");
  EXPECT_CONTAINS(e.text(), "nobody_defines_this");
  ASSERT_NE(diagnostics, nullptr);
  ASSERT_GE(kiln_diagnostics_count(diagnostics), 1u);
  const kiln_diagnostic* d = kiln_diagnostics_at(diagnostics, 0);
  EXPECT_STREQ(d->code, "undefined_symbol");
  EXPECT_STREQ(d->file, "lonely.cu.ltoir");
  EXPECT_CONTAINS(d->message, "nobody_defines_this");
  kiln_diagnostics_destroy(diagnostics);
  kiln_device_library_destroy(lib);
}

TEST(CAbiLink, ACompileErrorInTheKernelIsOneAsInKilnCompile) {
  Cache cache;
  kiln_device_library* lib = source_library(kLibrary);
  const kiln_program p = program("broken.cu", "#include \"scale_add.cuh\"\n__global__ void k() { undefined_name = 1; }\n");
  kiln_image* image = nullptr;
  kiln_diagnostics* diagnostics = nullptr;
  Error e;
  ASSERT_EQ(kiln_compile_and_link(cache.handle, &p, &lib, 1, kCubin90, &image, &diagnostics, &e), KILN_ERROR_KILN);
  EXPECT_EQ(e.code, KILN_ERRC_COMPILE_FAILED);
  ASSERT_NE(diagnostics, nullptr);
  EXPECT_EQ(kiln_diagnostics_at(diagnostics, 0)->line, 2);
  kiln_diagnostics_destroy(diagnostics);
  kiln_device_library_destroy(lib);
}

TEST(CAbiLink, BadArgumentsAreRefusedNamingThem) {
  Cache cache;
  const kiln_program p = program("caller.cu", kCaller);
  kiln_image* image = nullptr;
  Error e;
  EXPECT_EQ(kiln_compile_and_link(cache.handle, &p, nullptr, 1, kCubin90, &image, nullptr, &e), KILN_ERROR_KILN);
  EXPECT_CONTAINS(e.text(), "libraries");
  const kiln_device_library* none[] = {nullptr};
  Error null_entry;
  EXPECT_EQ(kiln_compile_and_link(cache.handle, &p, none, 1, kCubin90, &image, nullptr, &null_entry), KILN_ERROR_KILN);
  EXPECT_EQ(null_entry.code, KILN_ERRC_INVALID_HANDLE);
  EXPECT_CONTAINS(null_entry.text(), "libraries[0]");
  Error no_program;
  kiln_device_library* lib = nullptr;
  EXPECT_EQ(kiln_device_library_from_source(nullptr, nullptr, 0, &lib, &no_program), KILN_ERROR_KILN);
  EXPECT_CONTAINS(no_program.text(), "program");
  Error headers;
  const kiln_program lp = program("scale_add.cu", kLibrary);
  EXPECT_EQ(kiln_device_library_from_source(&lp, nullptr, 2, &lib, &headers), KILN_ERROR_KILN);
  EXPECT_CONTAINS(headers.text(), "header_count is 2");
  kiln_device_library_destroy(nullptr);  // does nothing
}

}  // namespace
