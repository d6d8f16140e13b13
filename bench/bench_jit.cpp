// The JIT layer against raw NVRTC: first, in one process (Google Benchmark), cold compiles, cache
// hits and a CUB kernel with NVRTC's automatic precompiled headers; then, across processes, a new
// CUB kernel compiled in a fresh no-ASLR compile worker with the PCH another process made, warming
// 64 kernels with `kiln compile --warm` on 1 and N threads, and (GPU only) a disk hit in a new
// process up to a launchable kernel against driver init + a raw module load. Every compile uses a
// source body not seen before, so nothing but the layer under test can help. A table of ratios
// ends the output.
//
//   bench_jit [google benchmark flags]
//   bench_jit --disk-hit-child kiln|kiln-nvrtc|raw DIR   (internal: one side of the disk-hit comparison)
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/nvrtc_api.hpp"
#include "kiln/ipc/spawn.hpp"
#include "kiln/jit/compile_worker.hpp"
#include "kiln/jit/kernel_cache.hpp"
#include "timing.hpp"

namespace {

using namespace kiln::jit;
namespace fs = std::filesystem;

constexpr const char* kSaxpy = R"(
extern "C" __global__ void saxpy(float a, const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
)";

constexpr const char* kCubReduce = R"(
#include <cub/block/block_reduce.cuh>
extern "C" __global__ void block_sum(const int* in, int* out) {
  using Reduce = cub::BlockReduce<int, 128>;
  __shared__ typename Reduce::TempStorage storage;
  int total = Reduce(storage).Sum(in[threadIdx.x]);
  if (threadIdx.x == 0) *out = total + )";

std::atomic<int> g_unique{0};

std::string unique_saxpy() { return std::string(kSaxpy) + "// " + std::to_string(g_unique++) + "\n"; }
std::string unique_cub() { return std::string(kCubReduce) + std::to_string(g_unique++) + "; }\n"; }

fs::path bench_dir(const char* what) {
  fs::path d = fs::temp_directory_path() / ("kiln-bench-jit-" + std::to_string(::getpid()) + "-" + what);
  fs::remove_all(d);
  return d;
}

// NVRTC directly, with the options kiln would pass (architecture and the toolkit's folders).
void raw_nvrtc_compile(const std::string& source, const std::vector<std::string>& extra = {}) {
  const auto& api = kiln::driver::nvrtc();
  std::vector<std::string> options{"--gpu-architecture=sm_90"};
  for (const auto& d : toolkit_include_dirs()) options.push_back("-I" + d);
  options.insert(options.end(), extra.begin(), extra.end());
  std::vector<const char*> argv;
  for (const auto& o : options) argv.push_back(o.c_str());
  nvrtcProgram p;
  kiln::driver::check(api.nvrtcCreateProgram(&p, source.c_str(), "kernel.cu", 0, nullptr, nullptr), "create");
  kiln::driver::check(api.nvrtcCompileProgram(p, int(argv.size()), argv.data()), "compile");
  size_t size = 0;
  api.nvrtcGetCUBINSize(p, &size);
  std::string cubin(size, '\0');
  api.nvrtcGetCUBIN(p, cubin.data());
  benchmark::DoNotOptimize(cubin.data());
  api.nvrtcDestroyProgram(&p);
}

void BM_ColdCompile_RawNvrtc(benchmark::State& state) {
  for (auto _ : state) raw_nvrtc_compile(unique_saxpy());
}
BENCHMARK(BM_ColdCompile_RawNvrtc)->Unit(benchmark::kMillisecond)->MinTime(1.0);

// Miss in both tiers, NVRTC, then stored in memory and on disk (fsync included).
void BM_ColdCompile_KernelCache(benchmark::State& state) {
  KernelCacheOptions o;
  o.disk.directory = bench_dir("cold");
  KernelCache cache(o);
  Program p;
  for (auto _ : state) {
    p.source = unique_saxpy();
    benchmark::DoNotOptimize(cache.compile(p, Target::for_arch(90)).data());
  }
  fs::remove_all(o.disk.directory);
}
BENCHMARK(BM_ColdCompile_KernelCache)->Unit(benchmark::kMillisecond)->MinTime(1.0);

// The lookup alone, with a key the caller computed once.
void BM_MemoryHit_Find(benchmark::State& state) {
  KernelCacheOptions o;
  o.use_disk = false;
  KernelCache cache(o);
  Program p;
  p.source = kSaxpy;
  const CacheKey key = cache.compile(p, Target::for_arch(90)).key();
  for (auto _ : state) benchmark::DoNotOptimize(cache.find(key));
}
BENCHMARK(BM_MemoryHit_Find);

// compile() on a cached program: hashes the program, then the lookup.
void BM_MemoryHit_Compile(benchmark::State& state) {
  KernelCacheOptions o;
  o.use_disk = false;
  KernelCache cache(o);
  Program p;
  p.source = kSaxpy;
  cache.compile(p, Target::for_arch(90));
  for (auto _ : state) benchmark::DoNotOptimize(cache.compile(p, Target::for_arch(90)).data());
}
BENCHMARK(BM_MemoryHit_Compile);

// Read, verify (header, SHA-256 of the payload) and decode one entry.
void BM_DiskHit(benchmark::State& state) {
  DiskCache disk({bench_dir("disk"), 0});
  KernelCacheOptions o;
  o.use_disk = false;
  Program p;
  p.source = kSaxpy;
  const Artifact a = KernelCache(o).compile(p, Target::for_arch(90));
  disk.store(a);
  for (auto _ : state) benchmark::DoNotOptimize(disk.load(a.key()));
  fs::remove_all(disk.directory());
}
BENCHMARK(BM_DiskHit)->Unit(benchmark::kMicrosecond);

void BM_Cub_RawNvrtc(benchmark::State& state) {
  for (auto _ : state) raw_nvrtc_compile(unique_cub());
}
BENCHMARK(BM_Cub_RawNvrtc)->Unit(benchmark::kMillisecond)->Iterations(3);

// A new CUB kernel body each time, compiled with kiln's precompiled header warm in this process.
void BM_Cub_KernelCacheWithPch(benchmark::State& state) {
  KernelCacheOptions o;
  o.disk.directory = bench_dir("pch");
  o.precompiled_headers = true;
  KernelCache cache(o);
  Program p;
  p.source = unique_cub();
  cache.compile(p, Target::for_arch(90));  // creates the PCH (slower than a plain compile)
  for (auto _ : state) {
    p.source = unique_cub();
    benchmark::DoNotOptimize(cache.compile(p, Target::for_arch(90)).data());
  }
  state.counters["pch_bytes"] = double(cache.disk()->usage().pch_bytes);
  fs::remove_all(o.disk.directory);
}
BENCHMARK(BM_Cub_KernelCacheWithPch)->Unit(benchmark::kMillisecond)->Iterations(3);

// ---- across processes ------------------------------------------------------------------------

using Clock = std::chrono::steady_clock;

using kiln::bench::median;
using kiln::bench::ms_since;

struct Row {
  std::string what;
  double kiln_ms, raw_ms;
};
std::vector<Row> g_rows;

// Runs args to completion (stdout and stderr discarded); milliseconds from spawn to exit.
double run_timed(const std::vector<std::string>& args) {
  kiln::ipc::UniqueFd null(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  kiln::ipc::SpawnOptions o;
  o.program = args.at(0);
  o.arguments.assign(args.begin() + 1, args.end());
  o.fds = {{1, null.get()}, {2, null.get()}};
  const auto start = Clock::now();
  const kiln::ipc::ExitStatus status = kiln::ipc::spawn(o).wait();
  const double ms = ms_since(start);
  if (!status.success()) {
    std::fprintf(stderr, "%s ended with %s\n", args[0].c_str(), status.describe().c_str());
    return -1;
  }
  return ms;
}

fs::path self_dir() { return fs::read_symlink("/proc/self/exe").parent_path(); }

// (a) A new CUB kernel in a new process, with the PCH another process made.
void new_process_pch() {
  std::vector<double> raw;
  for (int i = 0; i < 3; ++i) {
    const auto start = Clock::now();
    raw_nvrtc_compile(unique_cub());
    raw.push_back(ms_since(start));
  }
  const fs::path pch = bench_dir("worker-pch");
  fs::create_directories(pch);
  CompileSettings settings;
  settings.pch_dir = pch.string();
  CompileWorkerOptions no_aslr;
  no_aslr.disable_aslr = true;
  Program p;
  p.source = unique_cub();
  double creating = 0;
  {
    CompileWorker creator(no_aslr);
    const auto start = Clock::now();
    creator.compile(p, Target::for_arch(90), settings).value();
    creating = ms_since(start);
  }
  std::vector<double> compile_only, with_start;
  for (int i = 0; i < 3; ++i) {
    const auto start = Clock::now();
    CompileWorker fresh(no_aslr);
    const auto request = Clock::now();
    p.source = unique_cub();
    fresh.compile(p, Target::for_arch(90), settings).value();
    compile_only.push_back(ms_since(request));
    with_start.push_back(ms_since(start));
  }
  double aslr_on = 0;
  {
    CompileWorker randomised;  // its own folder: it would overwrite the no-ASLR file
    CompileSettings own;
    own.pch_dir = (pch / "aslr").string();
    fs::create_directories(own.pch_dir);
    const auto start = Clock::now();
    p.source = unique_cub();
    randomised.compile(p, Target::for_arch(90), own).value();
    aslr_on = ms_since(start);
  }
  fs::remove_all(pch);
  std::printf("\nnew CUB kernel in a new process (PCH made by another process; creating it took %.0f ms)\n", creating);
  std::printf("  raw NVRTC %.0f ms | fresh no-ASLR worker: compile %.0f ms, start + compile %.0f ms | "
              "fresh ASLR worker with its own -pch: %.0f ms\n",
              median(raw), median(compile_only), median(with_start), aslr_on);
  g_rows.push_back({"new CUB kernel, new no-ASLR worker, PCH warm (compile)", median(compile_only), median(raw)});
  g_rows.push_back({"same, including the worker's start", median(with_start), median(raw)});
}

// (c) NVRTC's -minimal (CUDA 12.4+): leaves texture/surface functions and the cudadevrt runtime API
// out of NVRTC's built-in headers. What it saves on a small kernel and on a CUB kernel, interleaved.
void minimal_option() {
  struct Case { const char* what; std::string (*source)(); int reps; };
  const Case cases[] = {{"saxpy", unique_saxpy, 7}, {"CUB BlockReduce", unique_cub, 3}};
  std::printf("\nNVRTC -minimal (raw NVRTC, median ms)\n");
  for (const Case& c : cases) {
    std::vector<double> plain, minimal;
    std::string failure;
    for (int i = 0; i < c.reps; ++i) {
      auto start = Clock::now();
      raw_nvrtc_compile(c.source());
      plain.push_back(ms_since(start));
      try {
        start = Clock::now();
        raw_nvrtc_compile(c.source(), {"-minimal"});
        minimal.push_back(ms_since(start));
      } catch (const std::exception& e) {
        failure = e.what();
        break;
      }
    }
    if (!failure.empty())
      std::printf("  %-16s plain %7.1f ms | -minimal: refused (%s)\n", c.what, median(plain), failure.substr(0, 160).c_str());
    else
      std::printf("  %-16s plain %7.1f ms | -minimal %7.1f ms (%.2fx)\n", c.what, median(plain), median(minimal),
                  median(minimal) / median(plain));
  }
}

// (b) `kiln compile --warm` of 64 kernel files on 1 thread and on hardware_concurrency threads.
void warm_64() {
  const fs::path cli = std::getenv("KILN_CLI") ? fs::path(std::getenv("KILN_CLI")) : self_dir().parent_path() / "tools" / "kiln";
  if (!fs::exists(cli)) {
    std::printf("\nwarm 64 kernels: skipped, no kiln CLI at %s (set KILN_CLI)\n", cli.c_str());
    return;
  }
  const fs::path dir = bench_dir("warm");
  fs::create_directories(dir / "src");
  for (int i = 0; i < 64; ++i) {
    std::string name = "k";  // built step by step: GCC 12 warns falsely on "k" + std::to_string(i)
    name += std::to_string(i);
    name += ".cu";
    std::ofstream(dir / "src" / name) << unique_saxpy();
  }
  const unsigned n = std::max(1u, std::thread::hardware_concurrency());
  auto warm = [&](unsigned jobs) {
    const fs::path cache = dir / ("cache-" + std::to_string(jobs));
    return run_timed({cli.string(), "compile", "--warm", (dir / "src").string(), "--arch", "sm_90", "-j",
                      std::to_string(jobs), "--cache-dir", cache.string()});
  };
  const double one = warm(1), many = warm(n);
  fs::remove_all(dir);
  std::printf("\nkiln compile --warm, 64 kernels: 1 thread %.0f ms, %u threads %.0f ms: %.2fx speed-up\n", one, n, many,
              many > 0 ? one / many : 0);
  g_rows.push_back({"warm 64 kernels, " + std::to_string(n) + " threads vs 1 thread", many, one});
}

// (c), the child: process start to a launchable kernel, through kiln's disk tier or raw. kiln's side
// makes its cache before choosing the target, so that both read NVRTC's facts from the cache
// folder's record (docs/JIT.md): a disk hit loads no NVRTC, and a "kiln" child that did is an error
// (5). "kiln-nvrtc" runs where the parent removed the record: it loads NVRTC, as every hit once did.
int disk_hit_child(const std::string& mode, const fs::path& dir) {
  using kiln::driver::check;
  const auto& cu = kiln::driver::cuda();
  check(cu.cuInit(0), "cuInit");
  CUdevice dev;
  check(cu.cuDeviceGet(&dev, 0), "cuDeviceGet");
  CUcontext ctx;
  check(cu.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain");
  check(cu.cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
  std::string image;
  if (mode == "raw") {
    std::ifstream in(dir / "raw.cubin", std::ios::binary);
    image.assign(std::istreambuf_iterator<char>(in), {});
  } else {
    KernelCacheOptions o;
    o.disk.directory = dir / "cache";
    KernelCache cache(o);
    Program p;
    p.source = kSaxpy;
    const Artifact a = cache.compile(p, Target::for_device(0));
    if (a.origin() != Origin::disk) return 3;  // the comparison needs a disk hit
    if (kiln::driver::nvrtc_loaded() != (mode == "kiln-nvrtc")) return 5;
    image.assign(a.image());
  }
  CUmodule module;
  check(cu.cuModuleLoadData(&module, image.data()), "cuModuleLoadData");
  CUfunction fn;
  check(cu.cuModuleGetFunction(&fn, module, "saxpy"), "cuModuleGetFunction");
  return fn ? 0 : 4;
}

void disk_hit_new_process(const char* self) {
  Target target;
  try {
    target = Target::for_device(0);
  } catch (const kiln::Error& e) {
    std::printf("\ndisk hit in a new process: skipped, needs a GPU (%s)\n", std::string(e.name()).c_str());
    return;
  }
  const fs::path dir = bench_dir("disk-hit");
  KernelCacheOptions o;
  o.disk.directory = dir / "cache";
  Program p;
  p.source = kSaxpy;
  const Artifact a = KernelCache(o).compile(p, target);
  std::ofstream(dir / "raw.cubin", std::ios::binary).write(static_cast<const char*>(a.data()), std::streamsize(a.size()));
  std::vector<double> kiln_ms, raw_ms, nvrtc_ms;
  for (int i = 0; i < 15; ++i) {  // alternate, so drift hits all sides alike; process starts vary by ms
    raw_ms.push_back(run_timed({self, "--disk-hit-child", "raw", dir.string()}));
    kiln_ms.push_back(run_timed({self, "--disk-hit-child", "kiln", dir.string()}));
    fs::remove_all(dir / "cache" / "nvrtc-facts");  // the child that loads NVRTC writes it again
    nvrtc_ms.push_back(run_timed({self, "--disk-hit-child", "kiln-nvrtc", dir.string()}));
  }
  fs::remove_all(dir);
  std::printf("\ndisk hit in a new process to a launchable kernel (%s): kiln %.1f ms (%.1f ms when it loads NVRTC), "
              "driver init + raw load %.1f ms\n",
              target.arch_name().c_str(), median(kiln_ms), median(nvrtc_ms), median(raw_ms));
  g_rows.push_back({"disk hit, new process, to a launchable kernel", median(kiln_ms), median(raw_ms)});
  g_rows.push_back({"same, NVRTC facts record missing (loads NVRTC)", median(nvrtc_ms), median(raw_ms)});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "--disk-hit-child") == 0) {
    try {
      return disk_hit_child(argv[2], argv[3]);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 1;
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  try {
    new_process_pch();
    minimal_option();
    warm_64();
    disk_hit_new_process(fs::read_symlink("/proc/self/exe").c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_jit: %s\n", e.what());
    return 1;
  }
  std::printf("\n%-58s %12s %12s %8s\n", "across processes", "kiln (ms)", "baseline", "ratio");
  for (const auto& r : g_rows)
    std::printf("%-58s %12.1f %12.1f %7.2fx\n", r.what.c_str(), r.kiln_ms, r.raw_ms, r.raw_ms > 0 ? r.kiln_ms / r.raw_ms : 0);
  std::printf("(baseline: raw NVRTC in one process; the 1-thread warm; driver init + cuModuleLoadData of the file)\n");
  return 0;
}
