// kilnd end to end on a real GPU, over HTTP on loopback: the gateway, the scheduler and the
// WorkerPool together. A faulting kernel from one client fails only its own request while other
// clients' launches go on, and every buffer reads back byte-identical; a kernel past its deadline
// gets a timeout and the GPU serves the next request. With gpu_mode concurrent, a short launch is
// answered while a long one runs, and the long one still ends at its deadline.
#include <gtest/gtest.h>

#include <regex>
#include <httplib.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>

#include "kiln/service/ipc_socket_server.hpp"
#include "kiln/service/server.hpp"
#include "kiln/service/token_store.hpp"
#include "kiln/service/worker_event_log.hpp"
#include "kiln/service/worker_pool.hpp"
#include "jit/link_kernels.hpp"
#include "support/child.hpp"
#include "support/gpu.hpp"
#include "support/http_fixture.hpp"
#include "support/log_capture.hpp"
#include "support/shared_object.hpp"

namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kSource = R"(
extern "C" __global__ void saxpy(float a, const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
extern "C" __global__ void fault(int* p) { *(volatile int*)(0x10) = *p; }
extern "C" __global__ void forever(int* flag) { while (*(volatile int*)flag == 0) {} }
)";

class KilndGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    KILN_REQUIRE_GPU();
    config_.port = 0;
    config_.cache_dir = dir_.path() / "cache";
    config_.http_threads = 16;
    configure();
    log_ = capture_.make(kiln::service::LogFormat::json);
    pool_options_.on_event = kiln::service::log_worker_events(log_);
    pool_ = std::make_unique<kiln::service::WorkerPool>(pool_options_);
    const std::string tokens = std::string("alice ") + kiln::testing::kAliceToken + "\nbob " + kiln::testing::kBobToken + "\n";
    server_ = std::make_unique<kiln::service::Server>(config_, kiln::service::TokenStore::parse(tokens, "test"), *pool_,
                                                      nullptr, log_);
    server_->start();
  }
  virtual void configure() {}  // a variant's settings, before the pool starts
  void TearDown() override {
    if (server_) server_->stop();
    server_.reset();
    pool_.reset();
  }
  std::unique_ptr<httplib::Client> client() {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    c->set_read_timeout(std::chrono::seconds(60));
    return c;
  }
  static httplib::Headers auth(const char* token) { return {{"Authorization", std::string("Bearer ") + token}}; }

  json post(httplib::Client& c, const std::string& path, const json& body, int expect, const char* token = kiln::testing::kAliceToken) {
    auto r = c.Post(path, auth(token), body.dump(), "application/json");
    EXPECT_TRUE(r) << path;
    if (!r) return {};
    EXPECT_EQ(r->status, expect) << path << ": " << r->body;
    return json::parse(r->body, nullptr, false);
  }
  std::uint64_t buffer(httplib::Client& c, const std::vector<float>& data) {
    auto b = post(c, "/v1/buffers", {{"device", 0}, {"bytes", data.size() * 4}}, 201);
    const std::uint64_t id = b["id"];
    auto r = c.Put("/v1/buffers/" + std::to_string(id) + "/data", auth(kiln::testing::kAliceToken),
                   std::string(reinterpret_cast<const char*>(data.data()), data.size() * 4), "application/octet-stream");
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no response");
    return id;
  }
  template <class T = float>
  std::vector<T> download(httplib::Client& c, std::uint64_t id) {
    auto r = c.Get("/v1/buffers/" + std::to_string(id) + "/data", auth(kiln::testing::kAliceToken));
    EXPECT_TRUE(r && r->status == 200);
    std::vector<T> v(r ? r->body.size() / sizeof(T) : 0);
    if (r) std::memcpy(v.data(), r->body.data(), v.size() * sizeof(T));
    return v;
  }
  std::uint64_t kernel(httplib::Client& c) { return post(c, "/v1/kernels", {{"name", "k.cu"}, {"source", kSource}}, 201)["id"]; }

  kiln::testing::TempDir dir_;
  kiln::testing::LogCapture capture_;
  kiln::service::Log log_;
  kiln::service::ServiceConfig config_;
  kiln::service::WorkerPoolOptions pool_options_;
  std::unique_ptr<kiln::service::WorkerPool> pool_;
  std::unique_ptr<kiln::service::Server> server_;
};

TEST_F(KilndGpu, LaunchEndToEnd) {
  auto c = client();
  auto ready = c->Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200) << ready->body;
  const std::uint64_t k = kernel(*c);
  const int n = 1 << 16;
  const std::uint64_t x = buffer(*c, std::vector<float>(n, 2.f)), y = buffer(*c, std::vector<float>(n, 1.f));
  auto done = post(*c, "/v1/launches",
                   {{"kernel", k}, {"function", "saxpy"}, {"grid", n / 256}, {"block", 256}, {"wait", true},
                    {"arguments", {{{"type", "f32"}, {"value", 3.0}}, {{"buffer", x}}, {{"buffer", y}}, {{"type", "i32"}, {"value", n}}}}},
                   200);
  EXPECT_EQ(done["status"], "completed") << done.dump();
  for (float v : download(*c, y)) ASSERT_EQ(v, 7.f);
  // The answer says where its time went (W3C Server-Timing).
  auto timed = c->Post("/v1/launches", auth(kiln::testing::kAliceToken),
                       nlohmann::json{{"kernel", k}, {"function", "saxpy"}, {"grid", n / 256}, {"block", 256}, {"wait", true},
                                      {"arguments", {{{"type", "f32"}, {"value", 0.0}}, {{"buffer", x}}, {{"buffer", y}},
                                                     {{"type", "i32"}, {"value", n}}}}}.dump(),
                       "application/json");
  ASSERT_TRUE(timed);
  EXPECT_EQ(timed->status, 200) << timed->body;
  EXPECT_TRUE(std::regex_match(timed->get_header_value("Server-Timing"),
                               std::regex("check;dur=[0-9.]+, run;dur=[0-9.]+, total;dur=[0-9.]+, handoff;dur=[0-9.]+, gpu;dur=[0-9.]+")))
      << timed->get_header_value("Server-Timing");
  auto metrics = c->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("kiln"), std::string::npos);
}

TEST_F(KilndGpu, FaultFailsOnlyItsRequestAndBuffersSurvive) {
  auto c = client();
  const std::uint64_t k = kernel(*c);
  const int n = 1 << 20;
  std::vector<float> pattern(n);
  for (int i = 0; i < n; ++i) pattern[i] = static_cast<float>(i % 977) * 0.5f;
  const std::uint64_t keep = buffer(*c, pattern), arg = buffer(*c, {1.f});
  std::atomic<int> others_ok{0}, others_failed{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int t = 0; t < 3; ++t)
    clients.emplace_back([&] {
      auto mine = client();
      const std::uint64_t y = buffer(*mine, std::vector<float>(256, 0.f));
      while (!stop) {
        auto r = mine->Post("/v1/launches", auth(kiln::testing::kAliceToken),
                            json{{"kernel", k}, {"function", "saxpy"}, {"block", 256}, {"wait", true},
                                 {"arguments", {{{"type", "f32"}, {"value", 1.0}}, {{"buffer", y}}, {{"buffer", y}}, {{"type", "i32"}, {"value", 256}}}}}
                                .dump(),
                            "application/json");
        if (r && r->status == 200) ++others_ok;
        else ++others_failed;
      }
    });
  std::this_thread::sleep_for(200ms);
  httplib::Headers fault_headers = auth(kiln::testing::kAliceToken);
  fault_headers.emplace("X-Request-Id", "gpu-fault-1");
  auto fault = c->Post("/v1/launches", fault_headers,
                       json{{"kernel", k}, {"function", "fault"}, {"wait", true}, {"arguments", {{{"buffer", arg}}}}}.dump(),
                       "application/json");
  std::this_thread::sleep_for(500ms);
  stop = true;
  for (auto& t : clients) t.join();
  ASSERT_TRUE(fault);
  EXPECT_EQ(fault->status, 422) << fault->body;
  auto f = json::parse(fault->body);
  EXPECT_EQ(f["error"]["name"], "CUDA_ERROR_ILLEGAL_ADDRESS") << f.dump();
  // The worker's own word on it names the request (its frame carried the id).
  EXPECT_NE(f["error"]["message"].get<std::string>().find("[request gpu-fault-1]"), std::string::npos) << f.dump();
  EXPECT_TRUE(f["error"]["sticky"].get<bool>());
  EXPECT_EQ(f["suspect_buffers"], json::array({arg}));
  // Requests queued behind the fault may see the worker being replaced; none may be lost for good.
  EXPECT_GT(others_ok.load(), 10);
  EXPECT_LE(others_failed.load(), 3) << "only requests caught in the fault's worker may fail";
  EXPECT_EQ(download(*c, keep), pattern) << "a buffer changed across the worker's death";
  auto ready = c->Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200) << "the worker came back: " << ready->body;
  // The log follows the fault from its request to the GPU worker and back.
  const auto sticky = capture_.events("sticky_fault");
  ASSERT_EQ(sticky.size(), 1u) << capture_.all();
  EXPECT_EQ(sticky[0]["level"], "error");
  EXPECT_EQ(sticky[0]["request_id"], "gpu-fault-1");
  EXPECT_EQ(sticky[0]["error"], "CUDA_ERROR_ILLEGAL_ADDRESS");
  EXPECT_EQ(sticky[0]["device"], 0);
  EXPECT_EQ(sticky[0]["suspect_buffers"], json::array({arg}));
  EXPECT_FALSE(sticky[0]["message"].get<std::string>().empty());
  EXPECT_GE(capture_.events("worker_exited").size(), 1u) << capture_.all();
  EXPECT_GE(capture_.events("worker_started").size(), 2u) << "the first worker and its replacement\n" << capture_.all();
  const auto line = capture_.requests("gpu-fault-1");
  ASSERT_EQ(line.size(), 1u) << capture_.all();
  EXPECT_EQ(line[0]["status"], 422);
}

TEST_F(KilndGpu, DeadlineGivesATimeoutAndTheGpuServesTheNextRequest) {
  auto c = client();
  const std::uint64_t k = kernel(*c);
  const std::uint64_t flag = buffer(*c, {0.f});
  const auto start = std::chrono::steady_clock::now();
  httplib::Headers headers = auth(kiln::testing::kAliceToken);
  headers.emplace("X-Request-Id", "gpu-deadline-1");
  auto answer = c->Post("/v1/launches", headers,
                        json{{"kernel", k}, {"function", "forever"}, {"deadline_ms", 300}, {"wait", true},
                             {"arguments", {{{"buffer", flag}}}}}.dump(),
                        "application/json");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 504) << answer->body;
  const json r = json::parse(answer->body, nullptr, false);
  EXPECT_EQ(r["status"], "timed_out") << r.dump();
  EXPECT_EQ(r["request_id"], "gpu-deadline-1") << r.dump();
  const auto kills = capture_.events("watchdog_kill");
  ASSERT_EQ(kills.size(), 1u) << capture_.all();
  EXPECT_EQ(kills[0]["request_id"], "gpu-deadline-1");
  EXPECT_EQ(kills[0]["error"], "KILN_ERROR_TIMEOUT");
  EXPECT_EQ(kills[0]["suspect_buffers"], json::array({flag}));
  const std::uint64_t y = buffer(*c, std::vector<float>(32, 1.f));
  auto next = post(*c, "/v1/launches",
                   {{"kernel", k}, {"function", "saxpy"}, {"block", 32}, {"wait", true},
                    {"arguments", {{{"type", "f32"}, {"value", 1.0}}, {{"buffer", y}}, {{"buffer", y}}, {{"type", "i32"}, {"value", 32}}}}},
                   200);
  EXPECT_EQ(download(*c, y)[0], 2.f);
}

class KilndConcurrentGpu : public KilndGpu {
 protected:
  // GPU 0 chosen concurrent by gpu_modes (the per-GPU setting), the default mode left isolation.
  void configure() override {
    config_.gpu_modes[0] = kiln::service::GpuMode::concurrent;
    config_.streams_per_gpu = 4;
    pool_options_.modes = config_.gpu_modes;
    pool_options_.streams_per_gpu = config_.streams_per_gpu;
  }
};

TEST_F(KilndConcurrentGpu, AShortLaunchIsAnsweredWhileALongOneRuns) {
  auto c = client();
  const std::uint64_t k = kernel(*c);
  const std::uint64_t flag = buffer(*c, {0.f}), y = buffer(*c, std::vector<float>(32, 1.f));
  auto held = post(*c, "/v1/launches",
                   {{"kernel", k}, {"function", "forever"}, {"deadline_ms", 5000}, {"arguments", {{{"buffer", flag}}}}}, 202);
  const std::string job = "/v1/jobs/" + std::to_string(held["id"].get<std::uint64_t>());
  for (int i = 0; i < 500; ++i) {  // until a dispatcher has handed it to the worker
    auto r = c->Get(job, auth(kiln::testing::kAliceToken));
    ASSERT_TRUE(r && r->status == 200);
    if (json::parse(r->body)["state"] == "running") break;
    std::this_thread::sleep_for(10ms);
  }
  auto next = post(*c, "/v1/launches",
                   {{"kernel", k}, {"function", "saxpy"}, {"block", 32}, {"wait", true},
                    {"arguments", {{{"type", "f32"}, {"value", 1.0}}, {{"buffer", y}}, {{"buffer", y}}, {{"type", "i32"}, {"value", 32}}}}},
                   200);
  EXPECT_EQ(next["status"], "completed") << next.dump();
  auto still = c->Get(job, auth(kiln::testing::kAliceToken));
  ASSERT_TRUE(still);
  EXPECT_EQ(json::parse(still->body)["state"], "running") << "the long launch ends only at its deadline: " << still->body;
  EXPECT_EQ(download(*c, y)[0], 2.f);
  auto ended = c->Get(job + "?wait_ms=20000", auth(kiln::testing::kAliceToken));
  ASSERT_TRUE(ended);
  EXPECT_EQ(json::parse(ended->body)["status"], "timed_out") << ended->body;
  auto metrics = c->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("kiln_worker_image_bytes_total{device=\"0\""), std::string::npos) << metrics->body;
  EXPECT_EQ(metrics->body.find("kiln_worker_image_bytes_total{device=\"0\",uuid=\"" + pool_->devices()[0].uuid + "\"} 0\n"),
            std::string::npos)
      << "the image was sent";
}

// Client shared memory on the real GPU: the region is pinned for it, an upload from it feeds a
// launch, and the download lands in the region byte for byte.
class KilndShmGpu : public KilndGpu {
 protected:
  void configure() override { config_.allow_client_shm = true; }
};

TEST_F(KilndShmGpu, ARegionFeedsALaunchAndTakesItsResult) {
  auto c = client();
  const int n = 1 << 20;
  kiln::testing::SharedObject object(2 * n * sizeof(float) + 4096);
  auto* floats = reinterpret_cast<float*>(object.data() + 4096);
  for (int i = 0; i < n; ++i) floats[i] = static_cast<float>(i % 1000);
  auto region = post(*c, "/v1/shm", {{"name", object.name()}, {"offset", 4096}, {"bytes", 2 * n * sizeof(float)}}, 201);
  EXPECT_EQ(region["pinned"], true) << region.dump();
  const std::uint64_t k = kernel(*c);
  const std::uint64_t x = post(*c, "/v1/buffers", {{"bytes", n * sizeof(float)}}, 201)["id"];
  const std::uint64_t y = buffer(*c, std::vector<float>(n, 1.f));
  post(*c, "/v1/buffers/" + std::to_string(x) + "/shm",
       {{"direction", "upload"}, {"region", region["id"]}, {"bytes", n * sizeof(float)}}, 200);
  auto done = post(*c, "/v1/launches",
                   {{"kernel", k}, {"function", "saxpy"}, {"grid", n / 256}, {"block", 256}, {"wait", true},
                    {"arguments", {{{"type", "f32"}, {"value", 2.0}}, {{"buffer", x}}, {{"buffer", y}}, {{"type", "i32"}, {"value", n}}}}},
                   200);
  EXPECT_EQ(done["status"], "completed") << done.dump();
  post(*c, "/v1/buffers/" + std::to_string(y) + "/shm",
       {{"direction", "download"}, {"region", region["id"]}, {"region_offset", n * sizeof(float)}}, 200);
  const float* result = floats + n;
  for (int i = 0; i < n; ++i) ASSERT_EQ(result[i], 2.f * static_cast<float>(i % 1000) + 1.f) << i;
}

// A kernel registered against a device library (source, compiled to LTO-IR for the GPU's
// architecture and linked by nvJitLink) runs, and computes with the library's function.
class KilndGpuLibraries : public KilndGpu {
 protected:
  void configure() override {
    std::ofstream(dir_.path() / "scale_add.cu") << kiln::jit::test_kernels::kLibrarySource;
    std::ofstream(dir_.path() / "scale_add.cuh") << kiln::jit::test_kernels::kLibraryHeader;
    kiln::service::DeviceLibraryConfig lib;
    lib.source = dir_.path() / "scale_add.cu";
    lib.headers["scale_add.cuh"] = dir_.path() / "scale_add.cuh";
    config_.device_libraries["scale_add"] = lib;
  }
};

TEST_F(KilndGpuLibraries, AKernelLinkedWithALibraryLaunchesAndUsesIt) {
  auto c = client();
  const json k = post(*c, "/v1/kernels",
                      {{"name", "caller.cu"}, {"source", kiln::jit::test_kernels::kCallerSource}, {"libraries", {"scale_add"}}},
                      201);
  ASSERT_EQ(k["targets"][0]["kind"], "cubin") << k.dump();
  const int n = 1 << 12;
  const std::uint64_t x = buffer(*c, std::vector<float>(n, 2.f)), y = buffer(*c, std::vector<float>(n, 1.f));
  auto done = post(*c, "/v1/launches",
                   {{"kernel", k["id"]}, {"function", "linked_saxpy"}, {"grid", n / 256}, {"block", 256}, {"wait", true},
                    {"arguments", {{{"type", "f32"}, {"value", 3.0}}, {{"buffer", x}}, {{"buffer", y}}, {{"type", "i32"}, {"value", n}}}}},
                   200);
  EXPECT_EQ(done["status"], "completed") << done.dump();
  for (float v : download(*c, y)) ASSERT_EQ(v, 7.f) << "scale_add(3, 2, 1) from the library";
}

// CUDA IPC with a co-located client in its own process (tests/service/ipc_test_client.cpp), over
// kilnd's IPC socket: no copy in either direction, and a client that dies holding a mapping takes
// nothing of kilnd's with it.
class KilndIpcGpu : public KilndGpu {
 protected:
  void configure() override { config_.allow_client_ipc = true; }
  void SetUp() override {
    KilndGpu::SetUp();
    if (IsSkipped()) return;
    socket_ = (dir_.path() / "kilnd.sock").string();
    ipc_ = std::make_unique<kiln::service::IpcSocketServer>(server_->core(), server_->tokens(), socket_, log_);
    ipc_->start();
  }
  void TearDown() override {
    if (ipc_) ipc_->stop();
    KilndGpu::TearDown();
  }
  std::uint64_t uint_buffer(httplib::Client& c, unsigned n) {
    return post(c, "/v1/buffers", {{"device", 0}, {"bytes", n * sizeof(unsigned)}}, 201)["id"];
  }
  json add_one(httplib::Client& c, std::uint64_t kernel, std::uint64_t buffer, unsigned n) {
    return post(c, "/v1/launches",
                {{"kernel", kernel}, {"function", "add_one_u32"}, {"grid", (n + 255) / 256}, {"block", 256}, {"wait", true},
                 {"arguments", {{{"buffer", buffer}}, {{"type", "u32"}, {"value", n}}}}},
                200);
  }
  std::uint64_t ipc_kernel(httplib::Client& c) {
    return post(c, "/v1/kernels",
                {{"name", "add_one.cu"},
                 {"source", "extern \"C\" __global__ void add_one_u32(unsigned* p, unsigned n) {\n"
                            "  unsigned i = blockIdx.x * blockDim.x + threadIdx.x;\n  if (i < n) p[i] += 1;\n}\n"}},
                201)["id"];
  }
  std::vector<std::string> client_args(std::vector<std::string> args) {
    args.insert(args.begin(), KILN_IPC_TEST_CLIENT);
    return args;
  }
  // The client's next line matching `pattern` (its first group); fails the test with its output
  // when it ends first.
  std::string expect_line(kiln::testing::Child& child, const std::string& pattern) {
    std::string transcript;
    const std::string got = child.wait_for(std::regex(pattern), transcript);
    EXPECT_FALSE(got.empty()) << "the client did not print " << pattern << ":\n" << transcript;
    transcript_ += transcript;
    return got;
  }
  static unsigned long long sum_of(unsigned n, unsigned a, unsigned b) {
    unsigned long long s = 0;
    for (unsigned i = 0; i < n; ++i) s += static_cast<unsigned long long>(a) * i + b;
    return s;
  }

  std::string socket_;
  std::string transcript_;
  std::unique_ptr<kiln::service::IpcSocketServer> ipc_;
};

TEST_F(KilndIpcGpu, AClientKernelWritesAKilndBufferAndAKilndLaunchReadsIt) {
  auto c = client();
  const unsigned n = 1u << 20;
  const std::uint64_t k = ipc_kernel(*c), y = uint_buffer(*c, n);
  const std::string go = (dir_.path() / "go").string();
  kiln::testing::Child child(client_args({"export", socket_, kiln::testing::kAliceToken, std::to_string(y), std::to_string(n), go}));
  ASSERT_EQ(expect_line(child, "^(written)$"), "written");
  // kilnd's launch reads what the client's kernel wrote into the mapping: 3i + 1 becomes 3i + 2.
  EXPECT_EQ(add_one(*c, k, y, n)["status"], "completed");
  const std::vector<unsigned> seen = download<unsigned>(*c, y);
  ASSERT_EQ(seen.size(), n);
  for (unsigned i = 0; i < n; ++i) ASSERT_EQ(seen[i], 3 * i + 2) << i;
  // And the client sees kilnd's write through the same mapping.
  std::ofstream(go) << "go";
  EXPECT_EQ(expect_line(child, "^sum ([0-9]+)$"), std::to_string(sum_of(n, 3, 2))) << transcript_;
  std::cout << transcript_;  // the export's timings, for PERF.md
}

TEST_F(KilndIpcGpu, AClientsOwnMemoryIsAKilndLaunchArgument) {
  auto c = client();
  const unsigned n = 1u << 20;
  const std::uint64_t k = ipc_kernel(*c);
  const std::string go = (dir_.path() / "go").string();
  kiln::testing::Child child(client_args({"import", socket_, kiln::testing::kAliceToken, std::to_string(n), go}));
  const std::string id = expect_line(child, "^buffer ([0-9]+)$");
  ASSERT_FALSE(id.empty());
  const std::uint64_t buffer = std::stoull(id);
  auto info = c->Get("/v1/buffers/" + id, auth(kiln::testing::kAliceToken));
  ASSERT_TRUE(info && info->status == 200);
  EXPECT_EQ(c->Get("/v1/buffers/" + id, auth(kiln::testing::kBobToken))->status, 404);  // alice's only
  EXPECT_EQ(add_one(*c, k, buffer, n)["status"], "completed");
  const std::vector<unsigned> seen = download<unsigned>(*c, buffer);
  ASSERT_GE(seen.size(), n);
  for (unsigned i = 0; i < n; ++i) ASSERT_EQ(seen[i], i + 1) << i;
  std::ofstream(go) << "go";
  EXPECT_EQ(expect_line(child, "^sum ([0-9]+)$"), std::to_string(sum_of(n, 1, 1))) << transcript_;
  std::cout << transcript_;
}

TEST_F(KilndIpcGpu, AClientThatDiesHoldingAMappingTakesNothingWithIt) {
  auto c = client();
  const unsigned n = 1u << 22;  // 16 MiB
  const std::uint64_t k = ipc_kernel(*c), y = uint_buffer(*c, n);
  const std::uint64_t other = buffer(*c, std::vector<float>(1024, 5.f));
  {
    kiln::testing::Child child(client_args({"export", socket_, kiln::testing::kAliceToken, std::to_string(y), std::to_string(n),
                                            (dir_.path() / "never").string(), "die"}));
    ASSERT_EQ(expect_line(child, "^(mapped)$"), "mapped");
    child.kill_now();  // SIGKILL with the mapping held: no clean-up of its own
  }
  // kilnd's buffer holds what the client wrote and serves on; so does everything else.
  EXPECT_EQ(add_one(*c, k, y, n)["status"], "completed");
  const std::vector<unsigned> seen = download<unsigned>(*c, y);
  for (unsigned i = 0; i < n; ++i) ASSERT_EQ(seen[i], 3 * i + 2) << i;
  for (float v : download(*c, other)) ASSERT_EQ(v, 5.f);
  EXPECT_EQ(c->Delete("/v1/buffers/" + std::to_string(y), auth(kiln::testing::kAliceToken))->status, 204);

  // A client that imported its own memory and died: kilnd frees that buffer (within its sweep,
  // at least once a second) and serves on.
  std::uint64_t imported = 0;
  {
    kiln::testing::Child child(client_args({"import", socket_, kiln::testing::kAliceToken, std::to_string(n),
                                            (dir_.path() / "never").string(), "die"}));
    const std::string id = expect_line(child, "^buffer ([0-9]+)$");
    ASSERT_FALSE(id.empty());
    imported = std::stoull(id);
    ASSERT_EQ(expect_line(child, "^(mapped)$"), "mapped");
    child.kill_now();
  }
  int status = 200;
  for (int i = 0; i < 300 && status == 200; ++i) {
    status = c->Get("/v1/buffers/" + std::to_string(imported), auth(kiln::testing::kAliceToken))->status;
    if (status == 200) std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(status, 404) << "the dead client's buffer is still listed";
  for (float v : download(*c, other)) ASSERT_EQ(v, 5.f);
  const std::uint64_t after = uint_buffer(*c, 1024);
  EXPECT_EQ(add_one(*c, k, after, 1024)["status"], "completed");
}

}  // namespace
