// kilnd's own cost, without a GPU: the same launch request as bench_service, served by the real
// Server (HTTP transport, auth, parsing, the service core, the scheduler) over a backend whose
// launches complete at once. What a round trip costs beyond this machine's loopback floor is what
// kilnd adds to every launch; bench_service measures the same on a GPU with the worker processes.
// The instant backend is a stand-in for the GPU only: nothing here runs a kernel.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "instant_backend.hpp"
#include "service_bench.hpp"
#include "timing.hpp"
#include "kiln/service/log.hpp"
#include "kiln/service/server.hpp"
#include "kiln/service/token_store.hpp"

using namespace kiln;
using kiln::bench::clk;
using kiln::bench::quantile;
using kiln::bench::us_since;
using nlohmann::json;

namespace {

void row(const char* what, const std::vector<double>& v) {
  std::printf("| %s | %.1f us | %.1f us |\n", what, quantile(v, .5), quantile(v, .99));
}

}  // namespace

int main(int argc, char** argv) {
  // Arguments: the number of sequential requests, and the seconds of the 64-client run (0: none).
  const int reps = argc > 1 ? std::atoi(argv[1]) : 20000;
  const int concurrent_seconds = argc > 2 ? std::atoi(argv[2]) : 2;
  kiln::bench::InstantBackend backend;
  service::ServiceConfig config;
  config.port = 0;
  config.cache_dir = std::filesystem::temp_directory_path() / "kiln-bench-service-cache";
  config.max_queued_jobs_per_tenant = 10000;
  const std::string token = "bench-token-0123456789abcdef0123";
  service::Server server(config, service::TokenStore::single("bench", token), backend);
  server.start();
  const httplib::Headers auth = {{"Authorization", "Bearer " + token}};
  httplib::Client c("127.0.0.1", server.port());
  const char* source = "extern \"C\" __global__ void empty(int* p) {}\n";
  std::string why;
  const std::string launch = kiln::bench::empty_launch_request(c, auth, source, &why);
  if (launch.empty()) {
    std::printf("setup failed: %s\n", why.c_str());
    return 1;
  }

  std::vector<double> launches, healthz;
  std::vector<kiln::bench::ServerTiming> timings;
  {
    kiln::bench::OneWriteClient lean(server.port());
    for (int i = 0; i < reps; ++i) {
      auto t = clk::now();
      if (lean.post("/v1/launches", "Bearer " + token, launch) != 200) {
        std::printf("launch %d failed\n", i);
        return 1;
      }
      launches.push_back(us_since(t));
      if (auto t = kiln::bench::server_timing(lean.last_head())) timings.push_back(*t);
    }
    for (int i = 0; i < reps; ++i) {
      auto t = clk::now();
      if (lean.get("/healthz") != 200) return 1;
      healthz.push_back(us_since(t));
    }
  }
  const std::vector<double> floor = kiln::bench::loopback_floor(reps);

  // What the request log costs a launch request: the same server with no log, a text log and a
  // JSON log to a file (one line per request; the level is info), in turn, twice.
  auto launch_p50 = [&](service::Log log) {
    service::Server logged(config, service::TokenStore::single("bench", token), backend, nullptr, std::move(log));
    logged.start();
    httplib::Client setup("127.0.0.1", logged.port());
    const std::string body = kiln::bench::empty_launch_request(setup, auth, source);
    if (body.empty()) return -1.0;
    kiln::bench::OneWriteClient lean(logged.port());
    std::vector<double> v;
    for (int i = 0; i < reps / 2; ++i) {
      auto t = clk::now();
      if (lean.post("/v1/launches", "Bearer " + token, body) != 200) return -1.0;
      v.push_back(us_since(t));
    }
    logged.stop();
    return quantile(v, .5);
  };
  const std::filesystem::path log_file = std::filesystem::temp_directory_path() / "kiln-bench-requests.log";
  double none = 0, text = 0, json_lines = 0;
  for (int round = 0; round < 2; ++round) {
    none += launch_p50(service::Log()) / 2;
    text += launch_p50(service::Log::open({service::LogFormat::text, service::LogLevel::info, log_file})) / 2;
    json_lines += launch_p50(service::Log::open({service::LogFormat::json, service::LogLevel::info, log_file})) / 2;
  }
  std::filesystem::remove(log_file);

  // 64 MiB bodies in and out (the largest max_body_bytes allows), GB/s: kilnd's transport and the
  // copies it makes, with no GPU copy behind them.
  {
    constexpr std::size_t kBody = std::size_t{64} << 20;
    auto big = c.Post("/v1/buffers", auth, json{{"bytes", kBody}}.dump(), "application/json");
    const std::string data_path = "/v1/buffers/" + json::parse(big->body)["id"].dump() + "/data";
    const std::string body(kBody, 'x');
    auto t = clk::now();
    auto put = c.Put(data_path, auth, body, "application/octet-stream");
    const double up_us = us_since(t);
    t = clk::now();
    auto got = c.Get(data_path, auth);
    const double down_us = us_since(t);
    std::printf("64 MiB body, cpp-httplib client: upload %.2f GB/s (%d), download %.2f GB/s (%d)\n",
                static_cast<double>(kBody) / (up_us * 1e3), put ? put->status : -1,
                static_cast<double>(kBody) / (down_us * 1e3), got ? got->status : -1);
  }

  // 64 kept-alive clients launching back to back: kilnd's own ceiling of launches per second.
  std::atomic<bool> stop{false};
  std::atomic<long> done{0}, failed{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < (concurrent_seconds > 0 ? 64 : 0); ++i)
    clients.emplace_back([&] {
      kiln::bench::OneWriteClient cl(server.port());
      while (!stop.load(std::memory_order_relaxed))
        (cl.post("/v1/launches", "Bearer " + token, launch) == 200 ? done : failed).fetch_add(1);
    });
  const auto started = clk::now();
  std::this_thread::sleep_for(std::chrono::seconds(concurrent_seconds));
  stop = true;
  for (auto& t : clients) t.join();
  const double seconds = us_since(started) / 1e6;

  std::printf("| %d requests, one-write kept-alive client | p50 | p99 |\n| --- | --- | --- |\n", reps);
  row("this machine's loopback floor (fixed answer, blocking socket thread)", floor);
  row("GET /healthz", healthz);
  row("POST /v1/launches, wait, instant backend", launches);
  std::printf("the request log: launch p50 without it %.1f us, text lines %.1f us (%+.1f), JSON lines %.1f us (%+.1f)\n",
              none, text, text - none, json_lines, json_lines - none);
  std::printf("kilnd's own cost of a launch request over the loopback floor: p50 %.1f us, p99 %.1f us\n",
              quantile(launches, .5) - quantile(floor, .5), quantile(launches, .99) - quantile(floor, .99));
  kiln::bench::print_server_timing(timings);
  if (concurrent_seconds > 0)
    std::printf("64 clients, instant backend: %.0f launch requests/s, %ld failed\n", static_cast<double>(done) / seconds,
                failed.load());
  server.stop();
  return 0;
}
