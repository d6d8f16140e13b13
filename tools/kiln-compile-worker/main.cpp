// kiln-compile-worker: the child process behind jit::CompileWorker. It runs NVRTC compiles sent
// over the socket it inherits as `--fd N`, until its owner closes that socket. Not meant to be run
// by hand: the owner starts it (ipc::spawn, optionally without ASLR) and talks to it over an
// ipc::Channel.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kiln/jit/compile_worker.hpp"

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--fd") == 0) {
    char* end = nullptr;
    const long fd = std::strtol(argv[2], &end, 10);
    if (end != argv[2] && *end == '\0' && fd >= 0 && fd < 1 << 20)
      return kiln::jit::serve_compile_worker(static_cast<int>(fd));
  }
  std::fprintf(stderr,
               "usage: %s --fd N\n"
               "kiln's compile worker: started by kiln (jit::CompileWorker), it serves NVRTC compiles on the\n"
               "connected Unix socket N until the other end closes it.\n",
               argc > 0 ? argv[0] : "kiln-compile-worker");
  return 2;
}
