// kilnd's costs on a GPU: one launch request over loopback HTTP against the same launch in-process
// (through the WorkerPool, and through core::launch directly), requests per second with 64
// concurrent clients, /healthz while 10,000 idle kept-alive and 1,000 half-open connections are
// held (and kilnd's memory for them), 8 tenants keeping one GPU busy with 1 ms kernels, and
// recovery after a sticky fault.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/core.hpp"
#include "service_bench.hpp"
#include "timing.hpp"
#include "kiln/driver/check.hpp"
#include "kiln/service/server.hpp"
#include "kiln/service/token_store.hpp"
#include "kiln/service/worker_pool.hpp"

using namespace kiln;
using kiln::bench::clk;
using kiln::bench::median;
using kiln::bench::us_since;
using nlohmann::json;

namespace {

const char* kSource = R"(
extern "C" __global__ void empty(int* p) {}
extern "C" __global__ void fault(int* p) { *(volatile int*)(0x10) = *p; }
extern "C" __global__ void spin(long long cycles) {
  const long long start = clock64();
  while (clock64() - start < cycles) {
  }
}
)";

// A connection from a chosen loopback address (all of 127.0.0.0/8 is loopback on Linux), so that
// thousands of them stay within kilnd's per-client limit. `first_bytes` are sent, then nothing.
int connect_from(const std::string& source, int port, const std::string& first_bytes) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in from{};
  from.sin_family = AF_INET;
  inet_pton(AF_INET, source.c_str(), &from.sin_addr);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0 ||
      (!first_bytes.empty() && ::send(fd, first_bytes.data(), first_bytes.size(), MSG_NOSIGNAL) < 0)) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads one small answer (headers and a short body) on a blocking socket; true for a 200.
bool read_ok(int fd) {
  char buf[1024];
  const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  return n > 12 && std::string_view(buf, static_cast<std::size_t>(n)).substr(9, 3) == "200";
}

// This process's resident memory in MiB.
double rss_mib() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

}  // namespace

int main() {
  core::Device dev = core::Device::get(0);
  const int arch = dev.compute_capability_major() * 10 + dev.compute_capability_minor();
  const int reps = 2000;
  std::printf("device: %s\n", dev.name().c_str());

  // In-process, no isolation: core::launch + synchronize.
  std::vector<double> direct;
  {
    core::ContextRef ctx = dev.primary_context();
    core::Module m = core::Module::load(ctx, kiln::bench::cubin_for(kSource, arch));
    core::Kernel k = m.kernel("empty");
    core::Stream s = core::Stream::create(ctx);
    core::DeviceBuffer b = core::DeviceBuffer::allocate(ctx, 4);
    for (int i = 0; i < reps; ++i) {
      auto t = clk::now();
      core::launch(s, k, core::LaunchConfig{}, b);
      s.synchronize();
      direct.push_back(us_since(t));
    }
  }

  // Polling before sleeping (spin_us) against sleeping at once: the in-process WorkerPool launch and
  // the one-write HTTP launch, each setting on its own pool, worker and server, back to back.
  {
    const std::string bearer = "Bearer bench-token-0123456789abcdef0123";
    auto measure = [&](std::chrono::microseconds spin) {
      service::WorkerPoolOptions options;
      options.spin = spin;
      service::WorkerPool spin_pool(options);
      service::LaunchSpec s;
      s.image = std::make_shared<const std::string>(kiln::bench::cubin_for(kSource, arch));
      s.image_key = "bench-spin";
      s.kernel = "empty";
      s.arguments = {service::BufferArgument{spin_pool.create_buffer(0, 4, "bench"), 0}};
      std::vector<double> pool_us, http_us;
      for (int i = 0; i < reps; ++i) {
        auto t = clk::now();
        spin_pool.launch(s);
        pool_us.push_back(us_since(t));
      }
      service::ServiceConfig c;
      c.port = 0;
      c.cache_dir = std::filesystem::temp_directory_path() / "kiln-bench-service-cache";
      c.spin = spin;
      service::Server spin_server(c, service::TokenStore::single("bench", bearer.substr(7)), spin_pool);
      spin_server.start();
      httplib::Client setup("127.0.0.1", spin_server.port());
      const httplib::Headers h = {{"Authorization", bearer}};
      const std::string body = kiln::bench::empty_launch_request(setup, h, kSource);
      if (body.empty()) return;
      kiln::bench::OneWriteClient lean(spin_server.port());
      std::vector<kiln::bench::ServerTiming> timings;
      for (int i = 0; i < reps; ++i) {
        auto t = clk::now();
        if (lean.post("/v1/launches", bearer, body) != 200) return;
        http_us.push_back(us_since(t));
        if (auto timing = kiln::bench::server_timing(lean.last_head())) timings.push_back(*timing);
      }
      std::printf("spin_us %lld: WorkerPool::launch p50 %.1f us, HTTP one-write launch p50 %.1f us / p99 %.1f us, "
                  "overhead p50 %.1f us\n",
                  static_cast<long long>(spin.count()), kiln::bench::quantile(pool_us, .5), kiln::bench::quantile(http_us, .5),
                  kiln::bench::quantile(http_us, .99), kiln::bench::quantile(http_us, .5) - kiln::bench::quantile(pool_us, .5));
      kiln::bench::print_server_timing(timings);
      spin_server.stop();
    };
    std::printf("polling before sleeping, default here %lld us (%u hardware threads):\n",
                static_cast<long long>(service::default_spin().count()), std::thread::hardware_concurrency());
    for (const long long us : {0LL, 100LL, 0LL, 100LL}) measure(std::chrono::microseconds(us));
  }

  service::WorkerPool pool;
  const service::BufferId buffer = pool.create_buffer(0, 4, "bench");
  service::LaunchSpec spec;
  spec.image = std::make_shared<const std::string>(kiln::bench::cubin_for(kSource, arch));
  spec.image_key = "bench-service";
  spec.kernel = "empty";
  spec.arguments = {service::BufferArgument{buffer, 0}};
  std::vector<double> in_pool;
  for (int i = 0; i < reps; ++i) {
    auto t = clk::now();
    pool.launch(spec);
    in_pool.push_back(us_since(t));
  }

  const std::filesystem::path cache = std::filesystem::temp_directory_path() / "kiln-bench-service-cache";
  service::ServiceConfig config;
  config.port = 0;
  config.cache_dir = cache;
  config.http_threads = 72;
  config.max_queued_jobs_per_tenant = 10000;
  const std::string token = "bench-token-0123456789abcdef0123";
  service::Server server(config, service::TokenStore::single("bench", token), pool);
  server.start();
  const httplib::Headers auth = {{"Authorization", "Bearer " + token}};
  // A client as curl or Python's requests behave: one kept-alive connection, Nagle off.
  httplib::Client c("127.0.0.1", server.port());
  c.set_keep_alive(true);
  c.set_tcp_nodelay(true);
  std::string why;
  const std::string launch = kiln::bench::empty_launch_request(c, auth, kSource, &why);
  if (launch.empty()) {
    std::printf("setup failed: %s\n", why.c_str());
    return 1;
  }
  std::vector<double> http;
  std::vector<kiln::bench::ServerTiming> timings;
  for (int i = 0; i < reps; ++i) {
    auto t = clk::now();
    auto r = c.Post("/v1/launches", auth, launch, "application/json");
    http.push_back(us_since(t));
    if (r)
      if (auto timing = kiln::bench::server_timing(r->get_header_value("Server-Timing"))) timings.push_back(*timing);
    if (!r || r->status != 200) {
      std::printf("launch failed: %s\n", r ? r->body.c_str() : "no response");
      return 1;
    }
  }
  // The same request from a client that writes each request with one send().
  std::vector<double> http_one_write;
  {
    kiln::bench::OneWriteClient lean(server.port());
    for (int i = 0; i < reps; ++i) {
      auto t = clk::now();
      const int status = lean.post("/v1/launches", "Bearer " + token, launch);
      http_one_write.push_back(us_since(t));
      if (status != 200) {
        std::printf("launch failed (one-write client): status %d\n", status);
        return 1;
      }
    }
  }

  // The HTTP floor: an answer that touches nothing of kilnd but routing (same connection).
  std::vector<double> healthz;
  for (int i = 0; i < reps; ++i) {
    auto t = clk::now();
    auto r = c.Get("/healthz");
    healthz.push_back(us_since(t));
    if (!r || r->status != 200) return 1;
  }
  // The same with the one-write client, and against the machine's own floor: a thread that answers
  // every request on a blocking socket with fixed bytes (no parsing, no routing), on this VM.
  std::vector<double> healthz_one_write, loopback_floor;
  {
    kiln::bench::OneWriteClient lean(server.port());
    for (int i = 0; i < reps; ++i) {
      auto t = clk::now();
      if (lean.get("/healthz") != 200) return 1;
      healthz_one_write.push_back(us_since(t));
    }
    loopback_floor = kiln::bench::loopback_floor(reps);
  }

  // The same with a new connection for every request (httplib's default client).
  std::vector<double> http_new;
  for (int i = 0; i < reps; ++i) {
    httplib::Client once("127.0.0.1", server.port());
    auto t = clk::now();
    auto r = once.Post("/v1/launches", auth, launch, "application/json");
    http_new.push_back(us_since(t));
    if (!r || r->status != 200) {
      std::printf("launch failed: %s\n", r ? r->body.c_str() : "no response");
      return 1;
    }
  }
  std::printf("\n| one empty launch, wait for completion | p50 | p99 |\n| --- | --- | --- |\n");
  std::printf("| in-process core::launch + synchronize | %.1f us | %.1f us |\n", kiln::bench::quantile(direct, .5), kiln::bench::quantile(direct, .99));
  std::printf("| in-process WorkerPool::launch (worker process, IPC) | %.1f us | %.1f us |\n", kiln::bench::quantile(in_pool, .5), kiln::bench::quantile(in_pool, .99));
  std::printf("| HTTP POST /v1/launches over loopback, kept-alive connection | %.1f us | %.1f us |\n", kiln::bench::quantile(http, .5), kiln::bench::quantile(http, .99));
  std::printf("| HTTP POST /v1/launches over loopback, kept-alive, one write per request | %.1f us | %.1f us |\n", kiln::bench::quantile(http_one_write, .5), kiln::bench::quantile(http_one_write, .99));
  std::printf("| HTTP GET /healthz over loopback, kept-alive connection (HTTP floor) | %.1f us | %.1f us |\n", kiln::bench::quantile(healthz, .5), kiln::bench::quantile(healthz, .99));
  std::printf("| HTTP GET /healthz over loopback, kept-alive, one write per request | %.1f us | %.1f us |\n", kiln::bench::quantile(healthz_one_write, .5), kiln::bench::quantile(healthz_one_write, .99));
  std::printf("| this VM's loopback floor: fixed answer from a blocking socket thread, one-write client | %.1f us | %.1f us |\n", kiln::bench::quantile(loopback_floor, .5), kiln::bench::quantile(loopback_floor, .99));
  std::printf("| HTTP POST /v1/launches over loopback, new connection each | %.1f us | %.1f us |\n", kiln::bench::quantile(http_new, .5), kiln::bench::quantile(http_new, .99));
  kiln::bench::print_server_timing(timings);
  std::printf("HTTP overhead over in-process (WorkerPool), one-write client: p50 %.1f us (goal <= 100 us), p99 %.1f us\n",
              kiln::bench::quantile(http_one_write, .5) - kiln::bench::quantile(in_pool, .5),
              kiln::bench::quantile(http_one_write, .99) - kiln::bench::quantile(in_pool, .99));
  std::printf("HTTP overhead over in-process (WorkerPool), cpp-httplib client: p50 %.1f us (goal <= 100 us), p99 %.1f us\n",
              kiln::bench::quantile(http, .5) - kiln::bench::quantile(in_pool, .5), kiln::bench::quantile(http, .99) - kiln::bench::quantile(in_pool, .99));

  // 64 concurrent kept-alive clients for 3 seconds, each launching and waiting.
  auto sixty_four_clients = [&](int port, const std::string& body, const char* label) {
    std::atomic<bool> go{false}, stop{false};
    std::atomic<long> done{0}, failed{0};
    std::mutex first_failure_mutex;
    std::string first_failure;
    std::vector<std::thread> clients;
    for (int t = 0; t < 64; ++t)
      clients.emplace_back([&] {
        httplib::Client mine("127.0.0.1", port);
        mine.set_keep_alive(true);
        mine.set_tcp_nodelay(true);
        while (!go) std::this_thread::yield();
        while (!stop) {
          auto r = mine.Post("/v1/launches", auth, body, "application/json");
          if (r && r->status == 200) {
            ++done;
          } else if (failed++ == 0) {
            std::lock_guard lock(first_failure_mutex);
            first_failure = r ? std::to_string(r->status) + " " + r->body.substr(0, 200) : httplib::to_string(r.error());
          }
        }
      });
    go = true;
    const auto t0 = clk::now();
    std::this_thread::sleep_for(std::chrono::seconds(3));
    stop = true;
    for (auto& t : clients) t.join();
    const double seconds = us_since(t0) / 1e6;
    std::printf("64 concurrent clients, %s: %.0f launch requests/s (%ld completed, %ld failed%s%s)\n", label, done / seconds,
                done.load(), failed.load(), first_failure.empty() ? "" : "; the first: ", first_failure.c_str());
  };
  sixty_four_clients(server.port(), launch, "GPU in isolation");
  server.stop();

  // /healthz while 10,000 idle kept-alive connections (each has had one answer) and 1,000 half-open
  // ones (half a request line, then nothing) are held; client and server share this process, so
  // the descriptors count twice.
  {
    rlimit files{};
    getrlimit(RLIMIT_NOFILE, &files);
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
    getrlimit(RLIMIT_NOFILE, &files);
    const std::size_t room = files.rlim_cur > 2000 ? (files.rlim_cur - 1000) / 2 : 0;
    const std::size_t idle_n = std::min<std::size_t>(10000, room * 10 / 11), half_n = std::min<std::size_t>(1000, room / 11);
    service::ServiceConfig held = config;
    held.header_timeout = std::chrono::seconds(300);
    held.idle_timeout = std::chrono::seconds(300);
    service::Server idle_server(held, service::TokenStore::single("bench", token), pool);
    idle_server.start();
    const double rss_before = rss_mib();
    std::vector<int> fds;
    std::size_t idle_ok = 0, half_ok = 0;
    for (std::size_t i = 0; i < idle_n; ++i) {
      const int fd = connect_from("127.0.1." + std::to_string(1 + i % 200), idle_server.port(), "GET /healthz HTTP/1.1\r\nHost: b\r\n\r\n");
      if (fd < 0) break;
      fds.push_back(fd);
      if (read_ok(fd)) ++idle_ok;
    }
    for (std::size_t i = 0; i < half_n; ++i) {
      const int fd = connect_from("127.0.2." + std::to_string(1 + i % 200), idle_server.port(), "GET /heal");
      if (fd < 0) break;
      fds.push_back(fd);
      ++half_ok;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const double rss_held = rss_mib();
    kiln::bench::OneWriteClient probe(idle_server.port());
    std::vector<double> health_held;
    for (int i = 0; i < reps; ++i) {
      auto t = clk::now();
      const int status = probe.get("/healthz");
      health_held.push_back(us_since(t));
      if (status != 200) {
        std::printf("/healthz failed with connections held: status %d\n", status);
        return 1;
      }
    }
    std::printf("/healthz with %zu idle kept-alive + %zu half-open connections held (descriptor limit %llu): p50 %.1f us, "
                "p99 %.1f us (goal p99 < 10 ms); process RSS %.0f -> %.0f MiB (%.1f KiB per connection, client side "
                "included)\n",
                idle_ok, half_ok, static_cast<unsigned long long>(files.rlim_cur), kiln::bench::quantile(health_held, .5),
                kiln::bench::quantile(health_held, .99), rss_before, rss_held,
                fds.empty() ? 0.0 : (rss_held - rss_before) * 1024.0 / static_cast<double>(fds.size()));
    for (int fd : fds) ::close(fd);
    idle_server.stop();
  }

  // 8 tenants, each launching 1 ms kernels (synchronously, back to back) on one GPU for 3 s: how
  // much of the time the GPU runs them, with the GPU in isolation (one launch at a time: today's
  // guarantee) and in concurrent mode (8 streams).
  {
    core::ContextRef ctx = dev.primary_context();
    core::Module m = core::Module::load(ctx, kiln::bench::cubin_for(kSource, arch));
    core::Kernel k = m.kernel("spin");
    core::Stream s = core::Stream::create(ctx);
    const long long cycles = dev.attribute(CU_DEVICE_ATTRIBUTE_CLOCK_RATE);  // kHz: cycles per millisecond
    core::launch(s, k, core::LaunchConfig{}, cycles);
    s.synchronize();
    std::vector<double> kernel_us;
    for (int i = 0; i < 20; ++i) {
      auto t = clk::now();
      core::launch(s, k, core::LaunchConfig{}, cycles);
      s.synchronize();
      kernel_us.push_back(us_since(t));
    }
    std::string lines;
    for (int t = 0; t < 8; ++t) lines += "tenant" + std::to_string(t) + " tenant-token-" + std::to_string(t) + "-0123456789abcdef\n";
    auto eight_tenants = [&](service::GpuBackend& backend, service::GpuMode mode) {
      service::ServiceConfig tenants_config = config;
      tenants_config.gpu_mode = mode;
      tenants_config.streams_per_gpu = 8;
      service::Server tenants_server(tenants_config, service::TokenStore::parse(lines, "bench tenants"), backend);
      tenants_server.start();
      std::atomic<bool> run{true};
      std::atomic<long> launched{0}, refused{0};
      std::vector<std::thread> tenants;
      for (int t = 0; t < 8; ++t)
        tenants.emplace_back([&, t] {
          const std::string bearer = "Bearer tenant-token-" + std::to_string(t) + "-0123456789abcdef";
          httplib::Client mine("127.0.0.1", tenants_server.port());
          mine.set_keep_alive(true);
          mine.set_tcp_nodelay(true);
          const httplib::Headers h = {{"Authorization", bearer}};
          auto kr = mine.Post("/v1/kernels", h, json{{"name", "spin.cu"}, {"source", kSource}}.dump(), "application/json");
          if (!kr || kr->status != 201) {
            ++refused;
            return;
          }
          const std::uint64_t id = json::parse(kr->body)["id"];
          const std::string body =
              json{{"kernel", id}, {"function", "spin"}, {"wait", true}, {"arguments", {{{"type", "i64"}, {"value", cycles}}}}}.dump();
          while (run) {
            auto r = mine.Post("/v1/launches", h, body, "application/json");
            if (r && r->status == 200) ++launched;
            else ++refused;
          }
        });
      const auto t0 = clk::now();
      std::this_thread::sleep_for(std::chrono::seconds(3));
      run = false;
      for (auto& t : tenants) t.join();
      const double wall_us = us_since(t0);
      // Concurrent kernels overlap, so launches x kernel time can exceed the wall time: that is
      // the point of the mode (the spin kernel is one thread: the GPU has room for all 8).
      const double busy = static_cast<double>(launched.load()) * median(kernel_us) / wall_us;
      std::printf("8 tenants launching %.0f us kernels on one GPU, %s: %ld launches in %.1f s (%ld refused or failed); "
                  "kernel time / wall %.0f%%\n",
                  median(kernel_us), std::string(service::to_string(mode)).c_str(), launched.load(), wall_us / 1e6,
                  refused.load(), 100.0 * busy);
      tenants_server.stop();
    };
    eight_tenants(pool, service::GpuMode::isolation);
    service::WorkerPoolOptions concurrent;
    concurrent.mode = service::GpuMode::concurrent;
    concurrent.streams_per_gpu = 8;
    service::WorkerPool concurrent_pool(concurrent);
    eight_tenants(concurrent_pool, service::GpuMode::concurrent);
    service::ServiceConfig concurrent_config = config;
    concurrent_config.gpu_mode = service::GpuMode::concurrent;
    concurrent_config.streams_per_gpu = 8;
    service::Server concurrent_server(concurrent_config, service::TokenStore::single("bench", token), concurrent_pool);
    concurrent_server.start();
    httplib::Client setup("127.0.0.1", concurrent_server.port());
    const std::string concurrent_launch = kiln::bench::empty_launch_request(setup, auth, kSource, &why);
    if (concurrent_launch.empty()) {
      std::printf("setup on the concurrent server failed: %s\n", why.c_str());
      return 1;
    }
    sixty_four_clients(concurrent_server.port(), concurrent_launch, "GPU concurrent (8 streams)");
    concurrent_server.stop();
  }

  // 256 MiB into a buffer and back: HTTP bodies (64 MiB each, max_body_bytes) against a registered
  // POSIX shared memory region (pinned once at registration; no body), GB/s of the whole transfer.
  {
    constexpr std::size_t kBytes = std::size_t{256} << 20, kChunk = std::size_t{64} << 20;
    service::ServiceConfig shm_config = config;
    shm_config.allow_client_shm = true;
    service::Server shm_server(shm_config, service::TokenStore::single("bench", token), pool);
    shm_server.start();
    httplib::Client h("127.0.0.1", shm_server.port());
    h.set_read_timeout(std::chrono::seconds(120));
    h.set_write_timeout(std::chrono::seconds(120));
    auto id_of = [](const httplib::Result& r) { return r && r->status / 100 == 2 ? json::parse(r->body)["id"].get<std::uint64_t>() : 0; };
    const std::uint64_t target = id_of(h.Post("/v1/buffers", auth, json{{"bytes", kBytes}}.dump(), "application/json"));
    const std::string name = "/kiln-bench-" + std::to_string(::getpid());
    const int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    if (target == 0 || fd < 0 || ::ftruncate(fd, kBytes) != 0) {
      std::printf("shared memory section: setup failed\n");
      return 1;
    }
    auto* shared = static_cast<char*>(::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    for (std::size_t i = 0; i < kBytes; i += 4096) shared[i] = static_cast<char>(i >> 12);
    std::string body(kChunk, '\0');
    std::memcpy(body.data(), shared, kChunk);
    auto gbps = [&](double us) { return static_cast<double>(kBytes) / (us * 1e3); };
    auto t = clk::now();
    for (std::size_t at = 0; at < kBytes; at += kChunk)
      h.Put("/v1/buffers/" + std::to_string(target) + "/data?offset=" + std::to_string(at), auth, body, "application/octet-stream");
    const double http_up = us_since(t);
    t = clk::now();
    for (std::size_t at = 0; at < kBytes; at += kChunk)
      h.Get("/v1/buffers/" + std::to_string(target) + "/data?offset=" + std::to_string(at) + "&bytes=" + std::to_string(kChunk), auth);
    const double http_down = us_since(t);
    t = clk::now();
    auto region = h.Post("/v1/shm", auth, json{{"name", name}, {"bytes", kBytes}}.dump(), "application/json");
    const double register_us = us_since(t);
    const std::uint64_t region_id = id_of(region);
    const std::string copy = "/v1/buffers/" + std::to_string(target) + "/shm";
    t = clk::now();
    auto up = h.Post(copy, auth, json{{"direction", "upload"}, {"region", region_id}}.dump(), "application/json");
    const double shm_up = us_since(t);
    std::memset(shared, 0x5a, 4096);
    t = clk::now();
    auto down = h.Post(copy, auth, json{{"direction", "download"}, {"region", region_id}}.dump(), "application/json");
    const double shm_down = us_since(t);
    const bool intact = shared[4096] == static_cast<char>(1) && shared[0] == 0;
    std::printf("256 MiB, HTTP bodies (4 x 64 MiB): upload %.2f GB/s, download %.2f GB/s; shared memory region "
                "(%s, registered and pinned in %.1f ms): upload %.2f GB/s, download %.2f GB/s (goal upload >= 20 GB/s), "
                "data %s\n",
                gbps(http_up), gbps(http_down), region && region->status == 201 ? json::parse(region->body)["pinned"].dump().c_str() : "failed",
                register_us / 1e3, up && up->status == 200 ? gbps(shm_up) : 0.0, down && down->status == 200 ? gbps(shm_down) : 0.0,
                intact ? "round-tripped" : "WRONG");
    ::munmap(shared, kBytes);
    ::close(fd);
    ::shm_unlink(name.c_str());
    shm_server.stop();
  }

  // Recovery after a sticky fault: from the faulting request to the next completed launch.
  service::LaunchSpec fault = spec;
  fault.kernel = "fault";
  auto t = clk::now();
  auto r = pool.launch(fault);
  const double fault_ms = us_since(t) / 1e3;
  pool.launch(spec);
  std::printf("sticky fault (%s): faulting request %.1f ms, next launch completed %.1f ms after the fault was "
              "requested (goal <= 2000 ms)\n", r.error_name.c_str(), fault_ms, us_since(t) / 1e3);
  std::filesystem::remove_all(cache);
  return 0;
}
