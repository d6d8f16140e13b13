// A separate process for the disk-tier tests: compiles variants of a kernel through a KernelCache on
// the given folder and prints, per variant, "<index> <origin> <key>".
//   jit_cache_child <cache dir> <first variant> <count> [<rotation>]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "kernels.hpp"
#include "kiln/jit/kernel_cache.hpp"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s DIR FIRST COUNT [ROTATION]\n", argv[0]);
    return 2;
  }
  using namespace kiln::jit;
  try {
    KernelCacheOptions options;
    options.disk.directory = argv[1];
    KernelCache cache(options);
    const int first = std::atoi(argv[2]), count = std::atoi(argv[3]), rotation = argc > 4 ? std::atoi(argv[4]) : 0;
    for (int n = 0; n < count; ++n) {
      const int i = first + (n + rotation) % count;
      Program p;
      p.name = "variant.cu";
      p.source = std::string(test_kernels::kSaxpy) + "// variant " + std::to_string(i) + "\n";
      Artifact a = cache.compile(p, Target::for_arch(90));
      std::printf("%d %s %s\n", i, std::string(to_string(a.origin())).c_str(), a.key().hex().c_str());
    }
    for (const auto& w : cache.stats().warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
