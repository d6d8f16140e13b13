// kiln-worker: the per-GPU worker process of kilnd. Started by the supervisor (fork+exec) with its
// end of a Unix socket at a known descriptor; not meant to be run by hand.
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "kiln/service/worker.hpp"

int main(int argc, char** argv) {
  int socket_fd = -1, device = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--socket") socket_fd = std::atoi(argv[i + 1]);
    else if (flag == "--device") device = std::atoi(argv[i + 1]);
  }
  if (socket_fd < 0 || device < 0) {
    std::cerr << "usage: kiln-worker --socket FD --device ORDINAL (started by kilnd, not by hand)\n";
    return 2;
  }
  return kiln::service::run_worker(kiln::service::Channel(socket_fd), device);
}
