// The C ABI without a GPU: versions, errors, compiling through the cache (real NVRTC), bad input,
// the environment report, the pinned pool's bookkeeping and topology fixtures.
#include <nlohmann/json.hpp>

#include <array>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <unistd.h>

#include "c_abi_support.hpp"

namespace {

using kiln_c_test::Error;

const char* kSaxpy = R"(
template <typename T>
__global__ void saxpy(T a, const T* x, T* y, unsigned n) {
  unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
)";

struct TempDir {
  std::string path;
  TempDir() {
    char pattern[] = "/tmp/kiln-c-abi-XXXXXX";
    path = mkdtemp(pattern);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

struct Cache {
  TempDir dir;
  kiln_cache* handle = nullptr;
  Cache() {
    kiln_cache_options o;
    kiln_cache_options_init(&o);
    o.disk_directory = dir.path.c_str();
    Error e;
    EXPECT_EQ(kiln_cache_create(&o, &handle, &e), KILN_OK) << e.text();
  }
  ~Cache() { kiln_cache_destroy(handle); }
};

kiln_target ptx90() { return kiln_target{KILN_IMAGE_PTX, 90}; }

TEST(CAbi, VersionsAgreeWithTheHeader) {
  EXPECT_EQ(kiln_abi_version(), KILN_ABI_VERSION);
  EXPECT_STREQ(kiln_version(), "0.1.0");
}

TEST(CAbi, ErrorLookupExplainsACode) {
  Error e;
  ASSERT_EQ(kiln_error_lookup(KILN_ERROR_DRIVER, 700, &e), KILN_OK);
  EXPECT_STREQ(e.name, "CUDA_ERROR_ILLEGAL_ADDRESS");
  EXPECT_EQ(e.sticky, 1);
  EXPECT_EQ(e.domain, KILN_ERROR_DRIVER);
  EXPECT_GT(std::string(e.hint).size(), 20u);

  Error cancelled;
  ASSERT_EQ(kiln_error_lookup(KILN_ERROR_KILN, KILN_ERRC_CANCELLED, &cancelled), KILN_OK);
  EXPECT_STREQ(cancelled.name, "KILN_ERROR_CANCELLED");
  EXPECT_EQ(cancelled.sticky, 0);

  Error domain;
  EXPECT_EQ(kiln_error_lookup(static_cast<kiln_status>(99), 1, &domain), KILN_ERROR_KILN);
  EXPECT_CONTAINS(domain.text(), "99 is not a kiln_status naming a domain");

  Error unknown;
  EXPECT_EQ(kiln_error_lookup(KILN_ERROR_DRIVER, 123456, &unknown), KILN_ERROR_KILN);
  EXPECT_EQ(unknown.code, KILN_ERRC_INVALID_ARGUMENT);
  EXPECT_CONTAINS(unknown.text(), "123456");
}

TEST(CAbi, ErrorFindReadsCodesAsKilnExplainDoes) {
  size_t count = 0;
  std::array<kiln_error, 8> found{};
  Error e;
  ASSERT_EQ(kiln_error_find("CUDA_ERROR_ILLEGAL_ADDRESS", found.data(), found.size(), &count, &e), KILN_OK);
  ASSERT_EQ(count, 1u);
  EXPECT_EQ(found[0].domain, KILN_ERROR_DRIVER);
  EXPECT_EQ(found[0].code, 700);
  EXPECT_EQ(found[0].sticky, 1);
  EXPECT_GT(std::string(found[0].hint).size(), 20u);
  kiln_error_clear(&found[0]);

  ASSERT_EQ(kiln_error_find("nvrtc:6", found.data(), found.size(), &count, &e), KILN_OK);
  ASSERT_EQ(count, 1u);
  EXPECT_EQ(found[0].domain, KILN_ERROR_NVRTC);
  EXPECT_EQ(found[0].code, 6);
  kiln_error_clear(&found[0]);

  // A bare number names that code in every domain: counted in full, written up to the capacity.
  ASSERT_EQ(kiln_error_find("1", found.data(), 1, &count, &e), KILN_OK);
  EXPECT_GE(count, 3u);
  EXPECT_NE(found[0].name, nullptr);
  kiln_error_clear(&found[0]);
  EXPECT_EQ(found[1].name, nullptr);

  ASSERT_EQ(kiln_error_find("NO_SUCH_ERROR", found.data(), found.size(), &count, &e), KILN_OK);
  EXPECT_EQ(count, 0u);
  EXPECT_EQ(kiln_error_find(nullptr, found.data(), found.size(), &count, &e), KILN_ERROR_KILN);
  EXPECT_CONTAINS(e.text(), "text");
}

TEST(CAbi, BorrowingAStreamNeedsADriverAndAnOutPointer) {
  Error e;
  EXPECT_EQ(kiln_stream_borrow(0, 0, nullptr, &e), KILN_ERROR_KILN);
  EXPECT_CONTAINS(e.text(), "stream");
  if (kiln_c_test::why_no_gpu().empty()) GTEST_SKIP() << "a driver is here: the GPU tests borrow streams";
  kiln_stream* s = reinterpret_cast<kiln_stream*>(1);
  Error missing;
  EXPECT_NE(kiln_stream_borrow(0, 0x1234, &s, &missing), KILN_OK);
  EXPECT_EQ(s, nullptr);
}

TEST(CAbi, ClearingAnErrorReleasesAndZeroesIt) {
  kiln_error e{};
  ASSERT_EQ(kiln_launch(nullptr, nullptr, nullptr, nullptr, nullptr, 0, &e), KILN_ERROR_KILN);
  EXPECT_NE(e.message, nullptr);
  kiln_error_clear(&e);
  EXPECT_EQ(e.message, nullptr);
  EXPECT_EQ(e.name, nullptr);
  EXPECT_EQ(e.code, 0);
  kiln_error_clear(&e);        // twice is harmless
  kiln_error_clear(nullptr);   // so is NULL
}

TEST(CAbi, NullHandlesAreRefusedNamingTheCallAndTheParameter) {
  Error e;
  kiln_launch_config config{};
  EXPECT_EQ(kiln_launch(nullptr, nullptr, &config, nullptr, nullptr, 0, &e), KILN_ERROR_KILN);
  EXPECT_EQ(e.code, KILN_ERRC_INVALID_HANDLE);
  EXPECT_STREQ(e.name, "KILN_ERROR_INVALID_HANDLE");
  EXPECT_CONTAINS(e.text(), "kiln_launch: kernel is NULL");
  EXPECT_STREQ(e.call, "kiln_launch");

  Error wait;
  EXPECT_EQ(kiln_stream_wait(nullptr, -1, nullptr, &wait), KILN_ERROR_KILN);
  EXPECT_CONTAINS(wait.text(), "kiln_stream_wait: stream is NULL");

  Error image;
  kiln_image_info info{};
  info.size = sizeof info;
  EXPECT_EQ(kiln_image_get_info(nullptr, &info, &image), KILN_ERROR_KILN);
  EXPECT_EQ(image.code, KILN_ERRC_INVALID_HANDLE);

  // Without an error to fill, the status alone says it failed.
  EXPECT_EQ(kiln_stream_synchronize(nullptr, nullptr), KILN_ERROR_KILN);
  // Destroying NULL does nothing.
  kiln_stream_destroy(nullptr);
  kiln_buffer_destroy(nullptr);
  kiln_pinned_destroy(nullptr);
  kiln_image_destroy(nullptr);
  kiln_cache_destroy(nullptr);
  EXPECT_EQ(kiln_kernel_device(nullptr), -1);
  EXPECT_EQ(kiln_stream_device(nullptr), -1);
  EXPECT_EQ(kiln_stream_handle(nullptr), 0u);
}

TEST(CAbi, CompilesThroughTheCacheWithLoweredNames) {
  if (auto why = kiln_c_test::nvrtc_older_than(12, 0, "NVRTC's -minimal option (NVRTC 11.8 does not know it)"); !why.empty())
    GTEST_SKIP() << why;
  Cache cache;
  kiln_program p;
  kiln_program_init(&p);
  p.name = "saxpy.cu";
  p.source = kSaxpy;
  const char* expressions[] = {"saxpy<float>", "saxpy<double>"};
  p.name_expressions = expressions;
  p.name_expression_count = 2;
  p.minimal = 1;

  kiln_image* image = nullptr;
  Error e;
  ASSERT_EQ(kiln_compile(cache.handle, &p, ptx90(), &image, nullptr, &e), KILN_OK) << e.text();
  kiln_image_info info{};
  info.size = sizeof info;
  ASSERT_EQ(kiln_image_get_info(image, &info, &e), KILN_OK);
  EXPECT_EQ(info.target.kind, KILN_IMAGE_PTX);
  EXPECT_EQ(info.target.arch, 90);
  EXPECT_EQ(info.origin, KILN_ORIGIN_COMPILED);
  EXPECT_GT(info.compile_ns, 0);
  char key[65];
  ASSERT_EQ(kiln_image_key(image, key, &e), KILN_OK);
  EXPECT_EQ(std::string(key).size(), 64u);
  EXPECT_EQ(std::string(key).find_first_not_of("0123456789abcdef"), std::string::npos) << key;
  EXPECT_EQ(info.name_expression_count, 2u);
  const std::string ptx(static_cast<const char*>(info.data), info.data_size);
  EXPECT_CONTAINS(ptx, ".target sm_90");

  const char* lowered = nullptr;
  ASSERT_EQ(kiln_image_lowered_name(image, "saxpy<float>", &lowered, &e), KILN_OK);
  EXPECT_STREQ(lowered, "_Z5saxpyIfEvT_PKS0_PS0_j");
  EXPECT_CONTAINS(ptx, lowered);
  Error missing;
  EXPECT_EQ(kiln_image_lowered_name(image, "saxpy<int>", &lowered, &missing), KILN_ERROR_KILN);
  EXPECT_CONTAINS(missing.text(), "saxpy<int>");

  // The same program again: the memory tier answers, with the same key.
  kiln_image* again = nullptr;
  ASSERT_EQ(kiln_compile(cache.handle, &p, ptx90(), &again, nullptr, &e), KILN_OK);
  kiln_image_info info2{};
  info2.size = sizeof info2;
  ASSERT_EQ(kiln_image_get_info(again, &info2, &e), KILN_OK);
  EXPECT_EQ(info2.origin, KILN_ORIGIN_MEMORY);
  char key2[65];
  ASSERT_EQ(kiln_image_key(again, key2, &e), KILN_OK);
  EXPECT_STREQ(key2, key);

  kiln_cache_stats stats{};
  stats.size = sizeof stats;
  ASSERT_EQ(kiln_cache_get_stats(cache.handle, &stats, &e), KILN_OK);
  EXPECT_EQ(stats.compiles, 1u);
  EXPECT_EQ(stats.memory_hits, 1u);
  kiln_image_destroy(again);
  kiln_image_destroy(image);
}

TEST(CAbi, AnotherCacheOnTheSameFolderHitsTheDisk) {
  Cache first;
  kiln_program p;
  kiln_program_init(&p);
  p.source = "extern \"C\" __global__ void empty() {}";
  Error e;
  kiln_image* image = nullptr;
  ASSERT_EQ(kiln_compile(first.handle, &p, ptx90(), &image, nullptr, &e), KILN_OK) << e.text();
  kiln_image_destroy(image);

  kiln_cache_options o;
  kiln_cache_options_init(&o);
  o.disk_directory = first.dir.path.c_str();
  kiln_cache* second = nullptr;
  ASSERT_EQ(kiln_cache_create(&o, &second, &e), KILN_OK);
  ASSERT_EQ(kiln_compile(second, &p, ptx90(), &image, nullptr, &e), KILN_OK);
  kiln_image_info info{};
  info.size = sizeof info;
  ASSERT_EQ(kiln_image_get_info(image, &info, &e), KILN_OK);
  EXPECT_EQ(info.origin, KILN_ORIGIN_DISK);
  kiln_image_destroy(image);
  kiln_cache_destroy(second);
}

TEST(CAbi, InMemoryHeadersDefinesAndIncludeNames) {
  Cache cache;
  kiln_program p;
  kiln_program_init(&p);
  p.source = "#include \"scale.h\"\nextern \"C\" __global__ void k(float* x) { x[0] = SCALE * FACTOR; }";
  kiln_header header{"scale.h", "#define SCALE 3.0f\n"};
  p.headers = &header;
  p.header_count = 1;
  const char* defines[] = {"FACTOR=2.0f"};
  p.defines = defines;
  p.define_count = 1;
  Error e;
  kiln_image* image = nullptr;
  ASSERT_EQ(kiln_compile(cache.handle, &p, ptx90(), &image, nullptr, &e), KILN_OK) << e.text();
  kiln_image_destroy(image);

  // Without the define the program does not compile: the option reached NVRTC.
  p.define_count = 0;
  Error failed;
  EXPECT_EQ(kiln_compile(cache.handle, &p, ptx90(), &image, nullptr, &failed), KILN_ERROR_KILN);
  EXPECT_EQ(failed.code, KILN_ERRC_COMPILE_FAILED);
  EXPECT_CONTAINS(failed.text(), "FACTOR");
}

TEST(CAbi, ACompileErrorComesBackAsStructuredDiagnostics) {
  if (auto why = kiln_c_test::nvrtc_older_than(12, 0, "column numbers in NVRTC's diagnostics (NVRTC 11.8 reports the line only)"); !why.empty())
    GTEST_SKIP() << why;
  Cache cache;
  kiln_program p;
  kiln_program_init(&p);
  p.name = "broken.cu";
  p.source = "extern \"C\" __global__ void k(float* x) {\n  x[0] = 1.0f;\n  undefined_name = 2;\n}\n";
  kiln_image* image = nullptr;
  kiln_diagnostics* diagnostics = nullptr;
  Error e;
  ASSERT_EQ(kiln_compile(cache.handle, &p, ptx90(), &image, &diagnostics, &e), KILN_ERROR_KILN);
  EXPECT_EQ(image, nullptr);
  EXPECT_EQ(e.code, KILN_ERRC_COMPILE_FAILED);
  EXPECT_STREQ(e.name, "KILN_ERROR_COMPILE_FAILED");
  EXPECT_CONTAINS(e.text(), "broken.cu:3:");
  ASSERT_NE(diagnostics, nullptr);
  ASSERT_GE(kiln_diagnostics_count(diagnostics), 1u);
  const kiln_diagnostic* d = kiln_diagnostics_at(diagnostics, 0);
  ASSERT_NE(d, nullptr);
  EXPECT_STREQ(d->file, "broken.cu");
  EXPECT_EQ(d->line, 3);
  EXPECT_EQ(d->column, 3);
  EXPECT_EQ(d->severity, KILN_SEVERITY_ERROR);
  EXPECT_CONTAINS(d->message, "undefined_name");
  EXPECT_CONTAINS(d->formatted, "broken.cu:3:3: error:");
  EXPECT_EQ(kiln_diagnostics_at(diagnostics, kiln_diagnostics_count(diagnostics)), nullptr);
  kiln_diagnostics_destroy(diagnostics);

  kiln_cache_stats stats{};
  stats.size = sizeof stats;
  ASSERT_EQ(kiln_cache_get_stats(cache.handle, &stats, &e), KILN_OK);
  EXPECT_EQ(stats.compile_failures, 1u);
}

TEST(CAbi, WarningsOfAnAcceptedProgramAreDiagnosticsOfItsImage) {
  Cache cache;
  kiln_program p;
  kiln_program_init(&p);
  p.name = "warn.cu";
  p.source = "extern \"C\" __global__ void k(float* x) {\n  int unused_variable;\n  x[0] = 1.0f;\n}\n";
  kiln_image* image = nullptr;
  Error e;
  ASSERT_EQ(kiln_compile(cache.handle, &p, ptx90(), &image, nullptr, &e), KILN_OK) << e.text();
  kiln_diagnostics* diagnostics = nullptr;
  ASSERT_EQ(kiln_image_diagnostics(image, &diagnostics, &e), KILN_OK);
  ASSERT_GE(kiln_diagnostics_count(diagnostics), 1u);
  const kiln_diagnostic* d = kiln_diagnostics_at(diagnostics, 0);
  EXPECT_EQ(d->severity, KILN_SEVERITY_WARNING);
  EXPECT_EQ(d->line, 2);
  EXPECT_CONTAINS(d->message, "unused_variable");
  kiln_diagnostics_destroy(diagnostics);
  kiln_image_destroy(image);
}

TEST(CAbi, BadProgramsAndTargetsAreRefusedClearly) {
  Cache cache;
  kiln_image* image = nullptr;
  Error e;

  kiln_program uninitialised{};  // size 0: never passed through kiln_program_init
  uninitialised.source = "x";
  EXPECT_EQ(kiln_compile(cache.handle, &uninitialised, ptx90(), &image, nullptr, &e), KILN_ERROR_KILN);
  EXPECT_EQ(e.code, KILN_ERRC_INVALID_ARGUMENT);
  EXPECT_CONTAINS(e.text(), "kiln_program_init");

  kiln_program p;
  kiln_program_init(&p);
  Error no_source;
  EXPECT_EQ(kiln_compile(cache.handle, &p, ptx90(), &image, nullptr, &no_source), KILN_ERROR_KILN);
  EXPECT_CONTAINS(no_source.text(), "program->source is NULL");

  p.source = "__global__ void k() {}";
  p.header_count = 2;
  Error no_headers;
  EXPECT_EQ(kiln_compile(cache.handle, &p, ptx90(), &image, nullptr, &no_headers), KILN_ERROR_KILN);
  EXPECT_CONTAINS(no_headers.text(), "program->headers is NULL but header_count is 2");
  p.header_count = 0;

  const char* defines[] = {"OK", nullptr};
  p.defines = defines;
  p.define_count = 2;
  Error null_define;
  EXPECT_EQ(kiln_compile(cache.handle, &p, ptx90(), &image, nullptr, &null_define), KILN_ERROR_KILN);
  EXPECT_CONTAINS(null_define.text(), "program->defines[1] is NULL");
  p.define_count = 0;

  Error bad_kind;
  EXPECT_EQ(kiln_compile(cache.handle, &p, kiln_target{static_cast<kiln_image_kind>(7), 90}, &image, nullptr,
                         &bad_kind),
            KILN_ERROR_KILN);
  EXPECT_CONTAINS(bad_kind.text(), "target.kind 7");
  Error bad_arch;
  EXPECT_EQ(kiln_compile(cache.handle, &p, kiln_target{KILN_IMAGE_CUBIN, 0}, &image, nullptr, &bad_arch),
            KILN_ERROR_KILN);
  EXPECT_EQ(bad_arch.code, KILN_ERRC_INVALID_ARGUMENT);
  EXPECT_EQ(image, nullptr);

  kiln_target t{};
  ASSERT_EQ(kiln_target_parse("sm_90", &t, &e), KILN_OK);
  EXPECT_EQ(t.kind, KILN_IMAGE_CUBIN);
  EXPECT_EQ(t.arch, 90);
  ASSERT_EQ(kiln_target_parse("compute_80", &t, &e), KILN_OK);
  EXPECT_EQ(t.kind, KILN_IMAGE_PTX);
  EXPECT_EQ(t.arch, 80);
  Error unparsable;
  EXPECT_EQ(kiln_target_parse("sm_nine", &t, &unparsable), KILN_ERROR_KILN);
  EXPECT_CONTAINS(unparsable.text(), "sm_nine");
}

TEST(CAbi, TheEnvironmentReportIsDoctorsJson) {
  char* text = nullptr;
  Error e;
  ASSERT_EQ(kiln_environment_json(&text, &e), KILN_OK) << e.text();
  const auto report = nlohmann::json::parse(text);
  kiln_free(text);
  EXPECT_EQ(report["kiln"]["version"], "0.1.0");
  EXPECT_TRUE(report["nvrtc"]["found"].get<bool>());
  EXPECT_TRUE(report["gpus"].is_array());
  if (!kiln_c_test::why_no_gpu().empty()) {
    bool no_driver = false;
    for (const auto& p : report["problems"]) no_driver |= p["id"] == "no_driver";
    EXPECT_TRUE(no_driver) << report.dump(2);
    EXPECT_FALSE(report["healthy"].get<bool>());
  }
}

TEST(CAbi, WithoutADriverDeviceCallsSaySo) {
  if (kiln_c_test::why_no_gpu().empty()) GTEST_SKIP() << "a GPU is present: this test is for machines without one";
  int count = -1;
  Error e;
  const kiln_status status = kiln_device_count(&count, &e);
  ASSERT_NE(status, KILN_OK);
  if (status == KILN_ERROR_KILN) {  // no libcuda at all (CI); else the driver's own cuInit error
    EXPECT_EQ(e.code, KILN_ERRC_DRIVER_NOT_FOUND);
    EXPECT_STREQ(e.name, "KILN_ERROR_DRIVER_NOT_FOUND");
    EXPECT_GT(std::string(e.hint).size(), 20u);
  }
  kiln_stream* stream = nullptr;
  Error s;
  EXPECT_NE(kiln_stream_create(0, 0, &stream, &s), KILN_OK);
  EXPECT_EQ(stream, nullptr);
}

TEST(CAbi, PlainHostPoolReusesBlocksAndCountsThem) {
  kiln_pinned_pool* pool = nullptr;
  Error e;
  ASSERT_EQ(kiln_pinned_pool_create(-1, KILN_HOST_PLAIN, 0, &pool, &e), KILN_OK) << e.text();
  kiln_pinned* block = nullptr;
  void* data = nullptr;
  ASSERT_EQ(kiln_pinned_create(pool, 3000, "c-abi-test", &block, &data, &e), KILN_OK) << e.text();
  ASSERT_NE(data, nullptr);
  std::memset(data, 0x5a, 3000);
  kiln_pinned_pool_stats stats{};
  stats.size = sizeof stats;
  ASSERT_EQ(kiln_pinned_pool_get_stats(pool, &stats, &e), KILN_OK);
  EXPECT_EQ(stats.in_use, 4096u);  // the smallest size class
  EXPECT_EQ(stats.misses, 1u);
  kiln_pinned_destroy(block);

  void* again = nullptr;
  ASSERT_EQ(kiln_pinned_create(pool, 4000, nullptr, &block, &again, &e), KILN_OK);
  EXPECT_EQ(again, data);  // the cached block came back
  ASSERT_EQ(kiln_pinned_pool_get_stats(pool, &stats, &e), KILN_OK);
  EXPECT_EQ(stats.hits, 1u);
  // A block may outlive its pool's handle.
  kiln_pinned_pool_destroy(pool);
  std::memset(again, 1, 4000);
  kiln_pinned_destroy(block);

  Error zero;
  ASSERT_EQ(kiln_pinned_pool_create(-1, KILN_HOST_PLAIN, 0, &pool, &e), KILN_OK);
  EXPECT_EQ(kiln_pinned_create(pool, 0, nullptr, &block, &again, &zero), KILN_ERROR_KILN);
  EXPECT_CONTAINS(zero.text(), "bytes is 0");
  Error kind;
  kiln_pinned_pool* other = nullptr;
  EXPECT_EQ(kiln_pinned_pool_create(0, static_cast<kiln_host_memory>(9), 0, &other, &kind), KILN_ERROR_KILN);
  EXPECT_CONTAINS(kind.text(), "memory 9");
  kiln_pinned_pool_destroy(pool);
}

TEST(CAbi, AnOlderCallersShorterResultStructIsWrittenOnlyAsFarAsItsSize) {
  kiln_pinned_pool* pool = nullptr;
  Error e;
  ASSERT_EQ(kiln_pinned_pool_create(-1, KILN_HOST_PLAIN, 0, &pool, &e), KILN_OK);
  kiln_pinned* block = nullptr;
  ASSERT_EQ(kiln_pinned_create(pool, 100, nullptr, &block, nullptr, &e), KILN_OK);
  kiln_pinned_pool_stats stats{};
  stats.size = offsetof(kiln_pinned_pool_stats, hits);  // built before `hits` existed
  stats.hits = 777;
  stats.misses = 777;
  ASSERT_EQ(kiln_pinned_pool_get_stats(pool, &stats, &e), KILN_OK) << e.text();
  EXPECT_EQ(stats.size, offsetof(kiln_pinned_pool_stats, hits));
  EXPECT_EQ(stats.in_use, 4096u);
  EXPECT_EQ(stats.hits, 777u);  // past the caller's struct: untouched
  EXPECT_EQ(stats.misses, 777u);
  kiln_pinned_pool_stats unsized{};
  Error refused;
  EXPECT_EQ(kiln_pinned_pool_get_stats(pool, &unsized, &refused), KILN_ERROR_KILN);
  EXPECT_CONTAINS(refused.text(), "set it to sizeof the struct");
  kiln_pinned_destroy(block);
  kiln_pinned_pool_destroy(pool);
}

TEST(CAbi, LeaksReportedByABindingAreCounted) {
  const uint64_t before = kiln_leaks_reported();
  testing::internal::CaptureStderr();
  kiln_report_leak("kiln.Buffer of 64 bytes (tag \"test\") was garbage-collected without Close()");
  const std::string printed = testing::internal::GetCapturedStderr();
  EXPECT_EQ(kiln_leaks_reported(), before + 1);
  EXPECT_CONTAINS(printed, "kiln: LEAK: kiln.Buffer of 64 bytes");
  char* report = nullptr;
  uint64_t live = 1;
  Error e;
  ASSERT_EQ(kiln_allocation_report(&report, &live, &e), KILN_OK);
  kiln_free(report);
}

TEST(CAbi, TopologyOfAFixtureAndItsPlacement) {
  const std::string fixture = std::string(KILN_TOPOLOGY_FIXTURES) + "/pcie-8gpu-2socket";
  char* text = nullptr;
  Error e;
  ASSERT_EQ(kiln_topology_json(fixture.c_str(), &text, &e), KILN_OK) << e.text();
  const auto topology = nlohmann::json::parse(text);
  kiln_free(text);
  EXPECT_EQ(topology["gpus"].size(), 8u);

  ASSERT_EQ(kiln_topology_choose(fixture.c_str(), 2, nullptr, &text, &e), KILN_OK) << e.text();
  const auto placement = nlohmann::json::parse(text);
  kiln_free(text);
  ASSERT_EQ(placement["gpus"].size(), 2u);
  EXPECT_EQ(placement["gpus"][0]["pci_bus_id"], "0000:bc:00.0");
  EXPECT_EQ(placement["gpus"][1]["pci_bus_id"], "0000:bd:00.0");
  EXPECT_EQ(placement["link"], "PIX");
  EXPECT_CONTAINS(placement["reason"].get<std::string>(), "under one PCIe switch");

  // Constraints: leave out one of that pair, and ask for socket 0 only.
  kiln_placement_constraints constraints;
  kiln_placement_constraints_init(&constraints);
  const char* exclude[] = {"0000:bc:00.0"};
  constraints.exclude = exclude;
  constraints.exclude_count = 1;
  constraints.numa_node = 0;
  ASSERT_EQ(kiln_topology_choose(fixture.c_str(), 2, &constraints, &text, &e), KILN_OK) << e.text();
  const auto constrained = nlohmann::json::parse(text);
  kiln_free(text);
  ASSERT_EQ(constrained["gpus"].size(), 2u);
  for (const auto& g : constrained["gpus"]) {
    EXPECT_NE(g["pci_bus_id"], "0000:bc:00.0");
    EXPECT_LT(g["index"].get<int>(), 4) << "socket 0 holds GPUs 0-3: " << constrained.dump();
  }
  constraints.numa_node = -1;
  constraints.exclude_count = 0;
  constraints.min_free_bytes = 81000ull << 20;  // five GPUs have 81000 MiB or more free
  Error too_few;
  EXPECT_EQ(kiln_topology_choose(fixture.c_str(), 6, &constraints, &text, &too_few), KILN_ERROR_KILN);
  EXPECT_EQ(too_few.code, KILN_ERRC_INVALID_ARGUMENT);

  Error too_many;
  EXPECT_EQ(kiln_topology_choose(fixture.c_str(), 9, nullptr, &text, &too_many), KILN_ERROR_KILN);
  EXPECT_EQ(too_many.code, KILN_ERRC_INVALID_ARGUMENT);
  Error missing;
  EXPECT_EQ(kiln_topology_json("/nonexistent-fixture", &text, &missing), KILN_ERROR_KILN);
  EXPECT_CONTAINS(missing.text(), "/nonexistent-fixture");
}

}  // namespace
