// A co-located client of kilnd's IPC socket in its own process, for the CUDA IPC GPU tests
// (test_kilnd_ipc_gpu.cpp): what a user's program does with kiln's core API and the socket.
//
//   kiln-ipc-test-client export SOCKET TOKEN BUFFER N GOFILE [die]
//     maps kilnd's buffer, fills its first N unsigned ints with 3*i + 1 by its own kernel on its
//     own stream, prints "written"; once GOFILE exists, prints "sum S" of what the mapping holds.
//   kiln-ipc-test-client import SOCKET TOKEN N GOFILE [die]
//     allocates N unsigned ints of its own (cuMemCreate), fills them with i, hands them to kilnd,
//     prints "buffer ID"; once GOFILE exists, prints "sum S".
// With `die` it prints "mapped" instead of waiting and sleeps until it is killed, holding its
// mapping. Timings go out as "took <what> <microseconds>". Failures print "error ..." (exit 1).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/core.hpp"
#include "kiln/ipc/channel.hpp"
#include "support/nvrtc_compile.hpp"

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kFill = R"(
extern "C" __global__ void fill(unsigned* p, unsigned a, unsigned b, unsigned n) {
  unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) p[i] = a * i + b;
}
)";

long long micros_since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
}

kiln::ipc::Channel connect_to(const std::string& path) {
  kiln::ipc::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.data(), std::min(path.size(), sizeof a.sun_path - 1));
  if (!fd || ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0)
    throw std::runtime_error("cannot connect to " + path + ": " + std::strerror(errno));
  kiln::ipc::ChannelOptions options;
  options.peer = "kilnd";
  return kiln::ipc::Channel(std::move(fd), options);
}

kiln::ipc::Frame ask(kiln::ipc::Channel& channel, const json& request, std::span<const int> fds = {}) {
  channel.send(1u, request.dump(), fds);
  kiln::ipc::Received r = channel.receive_for(std::chrono::seconds(30));
  if (!r) throw std::runtime_error("kilnd did not answer");
  const json reply = json::parse(r.frame.payload);
  if (reply.contains("error")) throw std::runtime_error("kilnd refused: " + reply.dump());
  return std::move(r.frame);
}

void wait_for_file(const std::string& path) {
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (!std::filesystem::exists(path)) {
    if (Clock::now() > deadline) throw std::runtime_error("no " + path + " within 120 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

unsigned long long sum_of(CUdeviceptr p, unsigned n, kiln::core::ContextRef context) {
  std::vector<unsigned> host(n);
  kiln::core::copy(host.data(), p, n * sizeof(unsigned), context);
  unsigned long long sum = 0;
  for (unsigned v : host) sum += v;
  return sum;
}

[[noreturn]] void hold_until_killed() {
  std::cout << "mapped" << std::endl;
  for (;;) ::pause();
}

int run(const std::vector<std::string>& args) {
  using namespace kiln::core;
  const std::string& mode = args.at(0);
  const std::string& socket_path = args.at(1);
  const std::string& token = args.at(2);
  const bool die = args.back() == "die";
  Device device = Device::get(0);
  ContextRef context = device.primary_context();
  context.make_current();
  const std::string cubin = kiln::testing::compile_for_test(kFill, device.compute_capability_major() * 10 +
                                                                       device.compute_capability_minor());
  Module module = Module::load(context, cubin);
  Stream stream = Stream::create(context);
  kiln::ipc::Channel channel = connect_to(socket_path);

  if (mode == "export") {
    const std::uint64_t buffer = std::stoull(args.at(3));
    const unsigned n = static_cast<unsigned>(std::stoul(args.at(4)));
    const std::string& go = args.at(5);
    auto t0 = Clock::now();
    kiln::ipc::Frame reply = ask(channel, {{"op", "export_buffer"}, {"token", token}, {"buffer", buffer}});
    const long long asked = micros_since(t0);
    if (reply.fds.size() != 1) throw std::runtime_error("the export came without a descriptor");
    const json body = json::parse(reply.payload);
    t0 = Clock::now();
    ShareableBuffer mapped = ShareableBuffer::import(context, reply.fds[0].release(), body["mapped_bytes"].get<std::size_t>());
    std::cout << "took export_request " << asked << "\ntook import_map " << micros_since(t0) << std::endl;
    launch(stream, module.kernel("fill"), LaunchConfig::cover(n, 256), mapped, 3u, 1u, n);
    stream.synchronize();
    std::cout << "written" << std::endl;
    if (die) hold_until_killed();
    wait_for_file(go);
    std::cout << "sum " << sum_of(mapped.data(), n, context) << std::endl;
    return 0;
  }
  if (mode == "import") {
    const unsigned n = static_cast<unsigned>(std::stoul(args.at(3)));
    const std::string& go = args.at(4);
    ShareableBuffer own = ShareableBuffer::allocate(context, n * sizeof(unsigned), "client");
    launch(stream, module.kernel("fill"), LaunchConfig::cover(n, 256), own, 1u, 0u, n);
    stream.synchronize();
    const kiln::ipc::UniqueFd fd(own.export_fd());
    const int fds[] = {fd.get()};
    const auto t0 = Clock::now();
    kiln::ipc::Frame reply = ask(channel, {{"op", "import_buffer"}, {"token", token}, {"bytes", own.size()}, {"tag", "client"}}, fds);
    std::cout << "took import_request " << micros_since(t0) << std::endl;
    std::cout << "buffer " << json::parse(reply.payload)["buffer"]["id"].get<std::uint64_t>() << std::endl;
    if (die) hold_until_killed();
    wait_for_file(go);
    std::cout << "sum " << sum_of(own.data(), n, context) << std::endl;
    return 0;
  }
  throw std::runtime_error("unknown mode " + mode);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::cout << "error " << e.what() << std::endl;
    return 1;
  }
}
