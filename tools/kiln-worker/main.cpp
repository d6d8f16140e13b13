// kiln-worker: the GPU worker of kilnd, one process per GPU. Started by the supervisor
// (WorkerPool, through ipc::spawn) with its end of a Unix socket at a known descriptor; not meant
// to be run by hand.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <unistd.h>

#include "kiln/service/gpu_worker.hpp"
#include "kiln/service/gpu_worker_protocol.hpp"

int main(int argc, char** argv) {
  int socket_fd = -1, device = -1, lanes = 1, spin_us = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--socket") socket_fd = std::atoi(argv[i + 1]);
    else if (flag == "--device") device = std::atoi(argv[i + 1]);
    else if (flag == "--lanes") lanes = std::atoi(argv[i + 1]);  // launches at once (gpu_mode concurrent)
    else if (flag == "--spin-us") spin_us = std::atoi(argv[i + 1]);  // polling for the next frame before sleeping
  }
  if (socket_fd < 0 || device < 0 || lanes < 1 || lanes > 256 || spin_us < 0 || spin_us > 1000000) {
    std::cerr << "usage: kiln-worker --socket FD --device ORDINAL [--lanes 1-256] [--spin-us 0-1000000] (started by "
                 "kilnd, not by hand)\n";
    return 2;
  }
  const std::string supervisor = "the GPU worker's supervisor (pid " + std::to_string(::getppid()) + ")";
  return kiln::service::serve_gpu_worker(
      kiln::ipc::Channel(kiln::ipc::UniqueFd(socket_fd), kiln::service::gpu_worker_channel(supervisor, std::chrono::microseconds(spin_us))), device, lanes);
}
