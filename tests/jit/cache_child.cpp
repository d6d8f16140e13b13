// A separate process for the disk-tier tests (several processes sharing one cache folder, and a
// disk hit in a new process):
//   jit_cache_child <cache dir> <first variant> <count> [<rotation>]
//     compiles variants of a kernel through a KernelCache on the folder and prints, per variant,
//     "<index> <origin> <key>", then "# compiles=<n> lock_waits=<n> lock_timeouts=<n> corrupt=<n>".
//   jit_cache_child --hold-lock <cache dir> <variant>
//     takes the cross-process lock of a variant's key (as a compiling process does), prints
//     "locked" and sleeps until killed.
//   jit_cache_child --fill <cache dir> <cap bytes> <count> <seed> <image bytes>
//     stores <count> made-up entries through a DiskCache with that cap, as fast as it can.
//   jit_cache_child --hit <cache dir> <variant> <image file>
//     compiles one variant for sm_90, writes its image to the file and prints
//     "<origin> <key> nvrtc_loaded=<0|1> nvrtc_mapped=<0|1>" (mapped: a libnvrtc file is in
//     /proc/self/maps, whoever loaded it).
//   jit_cache_child --locate loader|environment
//     for the loader's own search (bare sonames only) or the environment's: prints
//     "<located>|<loaded>", what driver::locate_nvrtc found before anything was loaded, then what
//     open_nvrtc loaded ("none" when nothing).
//   jit_cache_child --link <cache dir>
//     compiles a kernel to LTO-IR and links it with a device library (both for sm_90) through a
//     KernelCache on the folder; prints "ltoir: <origin>" after the compile, then
//     "link: <origin> <key> nvjitlink_mapped=<0|1>" (the link needs nvJitLink; the compile does not;
//     a link-cache hit does not load it).
//   jit_cache_child --launch <cache dir>
//     (GPU) compiles saxpy for device 0 (Target::for_device after the cache is made), runs it,
//     checks the result and prints "<origin> <target> nvrtc_loaded=<0|1> nvrtc_mapped=<0|1>".
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "cache_entries.hpp"
#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/nvrtc_api.hpp"
#include "kiln/jit/device_library.hpp"
#include "kiln/jit/kernel_cache.hpp"
#include "link_kernels.hpp"
#include "raw_saxpy.hpp"

namespace {

using namespace kiln::jit;

using test_kernels::variant;

bool mapped(const char* library) {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);)
    if (line.find(library) != std::string::npos) return true;
  return false;
}

bool nvrtc_mapped() { return mapped("libnvrtc"); }

std::string nvrtc_state() {
  return std::string("nvrtc_loaded=") + (kiln::driver::nvrtc_loaded() ? "1" : "0") +
         " nvrtc_mapped=" + (nvrtc_mapped() ? "1" : "0");
}

int variants(int argc, char** argv) {
  KernelCacheOptions options;
  options.disk.directory = argv[1];
  KernelCache cache(options);
  const int first = std::atoi(argv[2]), count = std::atoi(argv[3]), rotation = argc > 4 ? std::atoi(argv[4]) : 0;
  for (int n = 0; n < count; ++n) {
    const int i = first + (n + rotation) % count;
    Artifact a = cache.compile(variant(i), Target::for_arch(90));
    std::printf("%d %s %s\n", i, std::string(to_string(a.origin())).c_str(), a.key().hex().c_str());
  }
  const CacheStats s = cache.stats();
  std::printf("# compiles=%llu lock_waits=%llu lock_timeouts=%llu corrupt=%llu\n",
              static_cast<unsigned long long>(s.compiles), static_cast<unsigned long long>(s.disk_lock_waits),
              static_cast<unsigned long long>(s.disk_lock_timeouts), static_cast<unsigned long long>(s.corrupt_entries));
  for (const auto& w : s.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  return 0;
}

int hold_lock(const char* dir, int index) {
  KernelCacheOptions options;
  options.disk.directory = dir;
  KernelCache cache(options);
  KeyLock lock = cache.disk()->lock_key(cache.key_for(variant(index), Target::for_arch(90)), std::chrono::minutes(1));
  std::printf("%s\n", lock.held() ? "locked" : "not locked");
  std::fflush(stdout);
  for (;;) ::pause();
}

int fill(const char* dir, std::uint64_t cap, int count, int seed, std::size_t image_bytes) {
  DiskCache disk({dir, cap});
  for (int i = 0; i < count; ++i) {
    ArtifactContents c;
    c.image.assign(image_bytes, static_cast<char>('a' + i % 26));
    c.program_name = "fill";
    c.key.bytes[0] = static_cast<std::uint8_t>(seed);
    c.key.bytes[1] = static_cast<std::uint8_t>(i);
    c.key.bytes[2] = static_cast<std::uint8_t>(i >> 8);
    disk.store(Artifact(std::move(c), Origin::compiled));
  }
  for (const auto& w : disk.warnings()) std::fprintf(stderr, "warning: %s\n", w.c_str());
  return 0;
}

int hit(const char* dir, int index, const char* image_file) {
  KernelCacheOptions options;
  options.disk.directory = dir;
  KernelCache cache(options);
  const Artifact a = cache.compile(variant(index), Target::for_arch(90));
  std::ofstream(image_file, std::ios::binary).write(static_cast<const char*>(a.data()), std::streamsize(a.size()));
  std::printf("%s %s %s\n", std::string(to_string(a.origin())).c_str(), a.key().hex().c_str(), nvrtc_state().c_str());
  for (const auto& w : cache.stats().warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  return 0;
}

int locate(const std::string& which) {
  const kiln::driver::NvrtcSearch search =
      which == "loader" ? kiln::driver::NvrtcSearch{} : kiln::driver::NvrtcSearch::from_environment();
  const std::optional<std::string> located = kiln::driver::locate_nvrtc(search);
  std::string loaded = "none";
  try {
    loaded = kiln::driver::open_nvrtc(search).library.path;
  } catch (const kiln::Error&) {
  }
  std::printf("%s|%s\n", located.value_or("none").c_str(), loaded.c_str());
  return 0;
}

int launch(const char* dir) {
  using kiln::driver::check;
  KernelCacheOptions options;
  options.disk.directory = dir;
  KernelCache cache(options);
  Program p;
  p.source = test_kernels::kSaxpy;
  const Target target = Target::for_device(0);
  const Artifact a = cache.compile(p, target);
  const std::string state = nvrtc_state();  // before the driver loads anything of its own

  if (const std::string wrong = kiln::testing::run_saxpy_raw(a.data(), 256); !wrong.empty()) {
    std::fprintf(stderr, "%s\n", wrong.c_str());
    return 4;
  }
  std::printf("%s %s %s\n", std::string(to_string(a.origin())).c_str(), target.arch_name().c_str(), state.c_str());
  return 0;
}

int link_library(const char* dir) {
  KernelCacheOptions options;
  options.disk.directory = dir;
  KernelCache cache(options);
  const Artifact kernel = cache.compile(test_kernels::caller_program(), Target::for_arch(90, ImageKind::ltoir));
  std::printf("ltoir: %s\n", std::string(to_string(kernel.origin())).c_str());
  std::fflush(stdout);
  LinkJob job;
  job.name = "child-link";
  job.inputs = {LinkInput::from_artifact(kernel, "caller.ltoir"),
                DeviceLibrary::from_program(test_kernels::library_program()).input_for(cache, Target::for_arch(90))};
  const Artifact linked = cache.link(job, Target::for_arch(90));
  std::printf("link: %s %s nvjitlink_mapped=%d\n", std::string(to_string(linked.origin())).c_str(),
              linked.key().hex().c_str(), mapped("libnvJitLink") ? 1 : 0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc == 5 && std::strcmp(argv[1], "--hit") == 0) return hit(argv[2], std::atoi(argv[3]), argv[4]);
    if (argc == 3 && std::strcmp(argv[1], "--launch") == 0) return launch(argv[2]);
    if (argc == 3 && std::strcmp(argv[1], "--link") == 0) return link_library(argv[2]);
    if (argc == 4 && std::strcmp(argv[1], "--hold-lock") == 0) return hold_lock(argv[2], std::atoi(argv[3]));
    if (argc == 7 && std::strcmp(argv[1], "--fill") == 0)
      return fill(argv[2], std::strtoull(argv[3], nullptr, 10), std::atoi(argv[4]), std::atoi(argv[5]),
                  std::strtoull(argv[6], nullptr, 10));
    if (argc == 3 && std::strcmp(argv[1], "--locate") == 0) return locate(argv[2]);
    if (argc >= 4 && argv[1][0] != '-') return variants(argc, argv);
    std::fprintf(stderr, "usage: %s DIR FIRST COUNT [ROTATION] | --hit DIR VARIANT IMAGE | --hold-lock DIR VARIANT | --fill DIR CAP COUNT SEED BYTES | --locate loader|environment | --launch DIR | --link DIR\n", argv[0]);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
