// Run-time linking (nvJitLink, LTO-IR) against whole-program NVRTC compiles (issue #18):
//   (a) a new small kernel that calls into a big device library (CUB block algorithms behind a few
//       extern "C" functions): its own lines compiled to LTO-IR and linked with the library's
//       prebuilt LTO-IR, against one NVRTC compile of library and kernel together. Goal: <= 0.2x.
//   (b) a link-cache hit in a new process (jit::compile_and_link, prebuilt library, disk tier),
//       from spawn to exit, against a compile-cache hit of the whole program in a new process.
//   (c) GPU only: the linked kernel's run time against the whole-program kernel's (same math).
// Every compile in (a) uses a kernel body not seen before, and no cache, so only NVRTC and
// nvJitLink are measured. Without a driver, (b) runs without the launch and (c) is skipped.
//
//   bench_link [iterations]
//   bench_link --hit-child link|whole DIR   (internal: one side of (b))
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/nvjitlink_api.hpp"
#include "kiln/driver/nvrtc_api.hpp"
#include "kiln/ipc/spawn.hpp"
#include "kiln/jit/compiler.hpp"
#include "kiln/jit/device_library.hpp"
#include "kiln/jit/kernel_cache.hpp"
#include "kiln/jit/linker.hpp"
#include "kiln/jit/nvrtc_facts.hpp"
#include "timing.hpp"

namespace {

using namespace kiln::jit;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int kArch = 90;  // (a) and (b) on any machine; (c) uses the device's own target

// The library: a few entry points over heavy templates (what makes whole-program compiles slow).
constexpr const char* kLibrary = R"(
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/block/block_radix_sort.cuh>
#include "bench_lib.cuh"
extern "C" __device__ float lib_poly(float x) {
  float r = 0.f;
  #pragma unroll
  for (int i = 0; i < 16; ++i) r = r * x + 0.5f * float(i + 1);
  return r;
}
extern "C" __device__ float lib_block_sum(float v) {
  using Reduce = cub::BlockReduce<float, 256>;
  __shared__ typename Reduce::TempStorage storage;
  return Reduce(storage).Sum(v);
}
extern "C" __device__ double lib_block_sum_double(double v) {
  using Reduce = cub::BlockReduce<double, 256>;
  __shared__ typename Reduce::TempStorage storage;
  return Reduce(storage).Sum(v);
}
extern "C" __device__ int lib_block_prefix(int v) {
  using Scan = cub::BlockScan<int, 256>;
  __shared__ typename Scan::TempStorage storage;
  int out;
  Scan(storage).ExclusiveSum(v, out);
  return out;
}
extern "C" __device__ float lib_block_prefix_float(float v) {
  using Scan = cub::BlockScan<float, 256, cub::BLOCK_SCAN_WARP_SCANS>;
  __shared__ typename Scan::TempStorage storage;
  float out;
  Scan(storage).InclusiveSum(v, out);
  return out;
}
extern "C" __device__ void lib_block_sort4(int* keys) {
  using Sort = cub::BlockRadixSort<int, 256, 4>;
  __shared__ typename Sort::TempStorage storage;
  int k[4] = {keys[0], keys[1], keys[2], keys[3]};
  Sort(storage).Sort(k);
  for (int i = 0; i < 4; ++i) keys[i] = k[i];
}
extern "C" __device__ void lib_block_sort4_float(float* keys) {
  using Sort = cub::BlockRadixSort<float, 256, 4>;
  __shared__ typename Sort::TempStorage storage;
  float k[4] = {keys[0], keys[1], keys[2], keys[3]};
  Sort(storage).Sort(k);
  for (int i = 0; i < 4; ++i) keys[i] = k[i];
}
)";

constexpr const char* kLibraryHeader = R"(
#pragma once
extern "C" __device__ float lib_poly(float x);
extern "C" __device__ float lib_block_sum(float v);
extern "C" __device__ double lib_block_sum_double(double v);
extern "C" __device__ int lib_block_prefix(int v);
extern "C" __device__ float lib_block_prefix_float(float v);
extern "C" __device__ void lib_block_sort4(int* keys);
extern "C" __device__ void lib_block_sort4_float(float* keys);
)";

// The user's kernel: a few lines calling two library functions. Blocks of 256 threads.
constexpr const char* kKernel = R"(
#include "bench_lib.cuh"
extern "C" __global__ void user_kernel(const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  float v = i < n ? lib_poly(x[i]) : 0.f;
  float s = lib_block_sum(v);
  if (threadIdx.x == 0) y[blockIdx.x] = s;
}
)";

int g_unique = 0;

Program kernel_program(bool unique) {
  Program p;
  p.name = "user_kernel.cu";
  p.source = std::string(kKernel) + (unique ? "// " + std::to_string(g_unique++) + "\n" : "");
  p.headers.emplace("bench_lib.cuh", kLibraryHeader);
  return p;
}

Program library_program() {
  Program p;
  p.name = "bench_lib.cu";
  p.source = kLibrary;
  p.headers.emplace("bench_lib.cuh", kLibraryHeader);
  return p;
}

Program whole_program(bool unique) {
  Program p = kernel_program(unique);
  p.name = "whole.cu";
  p.source = std::string(kLibrary) + p.source;
  return p;
}

using kiln::bench::median;
using kiln::bench::ms_since;

struct Row {
  std::string what;
  double ms, baseline_ms;
  std::string goal;
};
std::vector<Row> g_rows;

fs::path bench_dir(const char* what) {
  fs::path d = fs::temp_directory_path() / ("kiln-bench-link-" + std::to_string(::getpid()) + "-" + what);
  fs::remove_all(d);
  return d;
}

// (a) ---------------------------------------------------------------------------------------------

void compile_and_link_vs_whole(int iterations) {
  const Artifact library = compile(library_program(), Target::for_arch(kArch, ImageKind::ltoir)).value();
  const LinkInput library_input = LinkInput::from_bytes(LinkInputKind::ltoir, "bench_lib.ltoir", std::string(library.image()));
  std::printf("library: %zu bytes of LTO-IR, compiled once in %.1f ms\n", library.size(),
              std::chrono::duration<double, std::milli>(library.compile_time()).count());
  // One of each first: NVRTC's and nvJitLink's first calls initialise them.
  compile(whole_program(true), Target::for_arch(kArch)).value();
  std::vector<double> whole_ms, linked_ms, compile_ms, link_ms;
  for (int i = 0; i < iterations; ++i) {
    auto start = Clock::now();
    compile(whole_program(true), Target::for_arch(kArch)).value();
    whole_ms.push_back(ms_since(start));

    start = Clock::now();
    const Artifact kernel = compile(kernel_program(true), Target::for_arch(kArch, ImageKind::ltoir)).value();
    compile_ms.push_back(ms_since(start));
    const auto link_start = Clock::now();
    LinkJob job;
    job.name = "user_kernel";
    job.inputs = {LinkInput::from_artifact(kernel, "user_kernel.ltoir"), library_input};
    link(job, Target::for_arch(kArch)).value();
    link_ms.push_back(ms_since(link_start));
    linked_ms.push_back(ms_since(start));
  }
  std::printf("(a) new kernel calling the library, %d iterations (median): whole program %.1f ms; "
              "LTO-IR compile %.1f ms + link %.1f ms = %.1f ms\n",
              iterations, median(whole_ms), median(compile_ms), median(link_ms), median(linked_ms));
  g_rows.push_back({"compile + link vs whole-program compile", median(linked_ms), median(whole_ms), "<= 0.20x"});
}

// (b) ---------------------------------------------------------------------------------------------

// Runs args to completion (output discarded); milliseconds from spawn to exit, -1 on failure.
double run_timed(const std::vector<std::string>& args) {
  kiln::ipc::UniqueFd null(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  kiln::ipc::SpawnOptions o;
  o.program = args.at(0);
  o.arguments.assign(args.begin() + 1, args.end());
  o.fds = {{1, null.get()}};
  const auto start = Clock::now();
  const kiln::ipc::ExitStatus status = kiln::ipc::spawn(o).wait();
  const double ms = ms_since(start);
  if (!status.success()) {
    std::fprintf(stderr, "%s ended with %s\n", args[0].c_str(), status.describe().c_str());
    return -1;
  }
  return ms;
}

bool have_gpu() {
  const auto& d = kiln::driver::driver_state();
  if (!d.api || d.init_result != CUDA_SUCCESS) return false;
  int count = 0;
  return d.api->cuDeviceGetCount(&count) == CUDA_SUCCESS && count > 0;
}

// Loads `image` on device 0 and finds user_kernel: what "launchable" means here.
CUfunction load_kernel(const void* image, CUmodule& module) {
  using kiln::driver::check;
  const auto& cu = kiln::driver::cuda();
  CUdevice dev;
  check(cu.cuDeviceGet(&dev, 0), "cuDeviceGet");
  CUcontext ctx;
  check(cu.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain");
  check(cu.cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
  check(cu.cuModuleLoadData(&module, image), "cuModuleLoadData");
  CUfunction fn;
  check(cu.cuModuleGetFunction(&fn, module, "user_kernel"), "cuModuleGetFunction");
  return fn;
}

Target bench_target() { return have_gpu() ? Target::for_device(0) : Target::for_arch(kArch); }

// The child of (b): one lookup through a fresh KernelCache on DIR/cache, which must hit the disk.
int hit_child(const std::string& mode, const fs::path& dir) {
  KernelCacheOptions o;
  o.disk.directory = dir / "cache";
  KernelCache cache(o);
  // NVRTC's facts from the cache folder's record, as the cache itself reads them: no side loads NVRTC.
  const Target target = have_gpu() ? Target::for_device(0, nvrtc_facts(o.disk.directory)) : Target::for_arch(kArch);
  Artifact a;
  if (mode == "link") {
    const DeviceLibrary lib = DeviceLibrary::from_ltoir_file(dir / "bench_lib.ltoir", target.arch, {{"bench_lib.cuh", kLibraryHeader}});
    a = compile_and_link(cache, kernel_program(false), std::span(&lib, 1), target);
  } else {
    a = cache.compile(whole_program(false), target);
  }
  if (a.origin() != Origin::disk) return 3;
  if (have_gpu()) {
    CUmodule module;
    if (!load_kernel(a.data(), module)) return 4;
  }
  return 0;
}

void link_hit_new_process(const char* self) {
  const Target target = bench_target();
  const fs::path dir = bench_dir("hit");
  fs::create_directories(dir);
  const Artifact library = compile(library_program(), Target::for_arch(target.arch, ImageKind::ltoir)).value();
  std::FILE* f = std::fopen((dir / "bench_lib.ltoir").c_str(), "wb");
  std::fwrite(library.data(), 1, library.size(), f);
  std::fclose(f);
  {  // fill the disk tier for both sides
    KernelCacheOptions o;
    o.disk.directory = dir / "cache";
    KernelCache cache(o);
    const DeviceLibrary lib = DeviceLibrary::from_ltoir_file(dir / "bench_lib.ltoir", target.arch, {{"bench_lib.cuh", kLibraryHeader}});
    compile_and_link(cache, kernel_program(false), std::span(&lib, 1), target);
    cache.compile(whole_program(false), target);
  }
  std::vector<double> link_ms, whole_ms;
  for (int i = 0; i < 11; ++i) {
    link_ms.push_back(run_timed({self, "--hit-child", "link", dir.string()}));
    whole_ms.push_back(run_timed({self, "--hit-child", "whole", dir.string()}));
  }
  fs::remove_all(dir);
  std::printf("(b) cache hit in a new process%s (%s, median of 11): link %.1f ms, whole-program compile %.1f ms\n",
              have_gpu() ? " up to a loaded kernel" : " (no GPU: no load)", target.arch_name().c_str(), median(link_ms),
              median(whole_ms));
  g_rows.push_back({"link-cache hit vs compile-cache hit, new process", median(link_ms), median(whole_ms), "~1x"});
}

// (c) ---------------------------------------------------------------------------------------------

double kernel_ms(CUfunction fn, int n, int repeats) {
  using kiln::driver::check;
  const auto& cu = kiln::driver::cuda();
  const std::size_t bytes = std::size_t(n) * sizeof(float);
  std::vector<float> x(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) x[std::size_t(i)] = float(i % 97) / 97.f;
  CUdeviceptr dx, dy;
  check(cu.cuMemAlloc(&dx, bytes), "cuMemAlloc");
  check(cu.cuMemAlloc(&dy, bytes), "cuMemAlloc");
  check(cu.cuMemcpyHtoD(dx, x.data(), bytes), "cuMemcpyHtoD");
  void* args[] = {&dx, &dy, &n};
  const unsigned blocks = unsigned((n + 255) / 256);
  CUevent begin, end;
  check(cu.cuEventCreate(&begin, CU_EVENT_DEFAULT), "cuEventCreate");
  check(cu.cuEventCreate(&end, CU_EVENT_DEFAULT), "cuEventCreate");
  check(cu.cuLaunchKernel(fn, blocks, 1, 1, 256, 1, 1, 0, nullptr, args, nullptr), "cuLaunchKernel");  // warm-up
  check(cu.cuEventRecord(begin, nullptr), "cuEventRecord");
  for (int r = 0; r < repeats; ++r)
    check(cu.cuLaunchKernel(fn, blocks, 1, 1, 256, 1, 1, 0, nullptr, args, nullptr), "cuLaunchKernel");
  check(cu.cuEventRecord(end, nullptr), "cuEventRecord");
  check(cu.cuEventSynchronize(end), "cuEventSynchronize");
  float ms = 0;
  check(cu.cuEventElapsedTime(&ms, begin, end), "cuEventElapsedTime");
  cu.cuEventDestroy(begin);
  cu.cuEventDestroy(end);
  cu.cuMemFree(dx);
  cu.cuMemFree(dy);
  return double(ms) / repeats;
}

void kernel_runtime() {
  if (!have_gpu()) {
    std::printf("(c) linked vs whole-program kernel run time: skipped, no GPU\n");
    return;
  }
  const Target target = Target::for_device(0);
  KernelCacheOptions o;
  o.use_disk = false;
  KernelCache cache(o);
  const DeviceLibrary lib = DeviceLibrary::from_program(library_program(), {{"bench_lib.cuh", kLibraryHeader}});
  const Artifact linked = compile_and_link(cache, kernel_program(false), std::span(&lib, 1), target);
  const Artifact whole = cache.compile(whole_program(false), target);
  CUmodule linked_module, whole_module;
  CUfunction linked_fn = load_kernel(linked.data(), linked_module);
  CUfunction whole_fn = load_kernel(whole.data(), whole_module);
  const int n = 1 << 24;
  std::vector<double> l, w;
  for (int i = 0; i < 5; ++i) {  // alternate, so clocks and heat treat both alike
    l.push_back(kernel_ms(linked_fn, n, 50));
    w.push_back(kernel_ms(whole_fn, n, 50));
  }
  std::printf("(c) kernel run time, %d elements (%s): linked %.3f ms, whole program %.3f ms\n", n,
              target.arch_name().c_str(), median(l), median(w));
  g_rows.push_back({"linked kernel run time vs whole-program kernel", median(l), median(w), "~1x"});
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc == 4 && std::strcmp(argv[1], "--hit-child") == 0) return hit_child(argv[2], argv[3]);
    const int iterations = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
    const auto& nvjitlink = kiln::driver::nvjitlink_library();  // says why, when it is missing
    std::printf("bench_link: NVRTC %s, nvJitLink %s (%s)\n", kiln::driver::nvrtc_library().library.version.c_str(),
                nvjitlink.library.version.c_str(), nvjitlink.library.path.c_str());
    compile_and_link_vs_whole(iterations);
    link_hit_new_process(fs::read_symlink("/proc/self/exe").c_str());
    kernel_runtime();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_link: %s\n", e.what());
    return 1;
  }
  std::printf("\n%-52s %10s %10s %8s %9s\n", "", "kiln (ms)", "baseline", "ratio", "goal");
  for (const auto& r : g_rows)
    std::printf("%-52s %10.2f %10.2f %7.2fx %9s\n", r.what.c_str(), r.ms, r.baseline_ms,
                r.baseline_ms > 0 ? r.ms / r.baseline_ms : 0, r.goal.c_str());
  std::printf("(baselines: whole-program NVRTC compile; compile-cache disk hit in a new process; whole-program kernel)\n");
  return 0;
}
