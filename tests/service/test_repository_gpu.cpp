// The kernel repository on a real GPU: kilnd with its GPU worker, packages built by the real NVRTC
// (jit::pack) for this GPU, a hot swap under load and a rollback. Eight clients launch without a
// pause while version 2 is published into the folder (poll mode) and then rolled back; every launch
// must succeed, and every result must be the one the version it was dispatched to computes
// (version N writes N). The times from publishing to the first result of version 2, and of the
// rollback, are printed as figures (docs/PERF.md).
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "kiln/core/device.hpp"
#include "kiln/service/server.hpp"
#include "kiln/service/token_store.hpp"
#include "kiln/service/worker_pool.hpp"
#include "support/gpu.hpp"
#include "support/http_fixture.hpp"
#include "support/packages.hpp"

namespace kiln::testing {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

class RepositoryGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    KILN_REQUIRE_GPU();
    const core::Device gpu = core::Device::get(0);
    arch_ = "sm_" + std::to_string(gpu.compute_capability_major() * 10 + gpu.compute_capability_minor());
    jit::KernelCacheOptions o;
    o.disk.directory = dir_.path() / "pack-cache";
    cache_ = std::make_unique<jit::KernelCache>(o);
    repo_ = dir_.path() / "repository";
    fs::create_directories(repo_);
    pack_stamp(*cache_, repo_, "stamp", 1, {arch_, "compute_80"});

    config_.port = 0;
    config_.cache_dir = dir_.path() / "cache";
    config_.http_threads = 16;
    config_.repository.path = repo_;
    config_.repository.mode = service::RepositoryMode::poll;
    config_.repository.poll_interval = std::chrono::milliseconds(20);
    config_.repository.operators = {"alice"};
    pool_ = std::make_unique<service::WorkerPool>(service::WorkerPoolOptions{});
    const std::string tokens = std::string("alice ") + kAliceToken + "\n";
    server_ = std::make_unique<service::Server>(config_, service::TokenStore::parse(tokens, "test"), *pool_);
    server_->start();
  }
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
  static httplib::Headers auth() { return {{"Authorization", std::string("Bearer ") + kAliceToken}}; }

  TempDir dir_;
  std::string arch_;
  std::unique_ptr<jit::KernelCache> cache_;
  fs::path repo_;
  service::ServiceConfig config_;
  std::unique_ptr<service::WorkerPool> pool_;
  std::unique_ptr<service::Server> server_;
};

TEST_F(RepositoryGpu, EachVersionComputesItsOwnResultOnTheGpu) {
  pack_stamp(*cache_, repo_, "stamp", 2, {"compute_80"});  // PTX only: the driver compiles it
  auto c = client();
  for (int i = 0; i < 200; ++i) {
    auto p = c->Get("/v1/repository/stamp", auth());
    if (p && json::parse(p->body)["serving"] == 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const std::uint64_t b = json::parse(c->Post("/v1/buffers", auth(), R"({"bytes": 1024})", "application/json")->body)["id"];
  for (std::uint64_t version : {1, 2}) {
    json body = {{"kernel", "stamp:" + std::to_string(version)}, {"function", "stamp"}, {"grid", 1}, {"block", 256},
                 {"wait", true}, {"arguments", {{{"buffer", b}}, {{"type", "u32"}, {"value", 256}}}}};
    auto r = c->Post("/v1/launches", auth(), body.dump(), "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    auto data = c->Get("/v1/buffers/" + std::to_string(b) + "/data", auth());
    ASSERT_EQ(data->body.size(), 1024u);
    std::vector<unsigned> v(256);
    std::memcpy(v.data(), data->body.data(), 1024);
    for (unsigned x : v) ASSERT_EQ(x, version);
  }
}

TEST_F(RepositoryGpu, AHotSwapAndARollbackUnderLoadLoseNoLaunch) {
  // Version 2, packed beside the repository, published by one rename.
  const fs::path staging = dir_.path() / "staging";
  const fs::path v2 = pack_stamp(*cache_, staging, "stamp", 2, {arch_, "compute_80"});

  constexpr int kClients = 8;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> launches{0}, failures{0};
  std::mutex mutex;
  std::vector<std::string> failure_text;
  std::atomic<std::int64_t> first_v2_ns{0}, first_v1_after_rollback_ns{0};
  std::atomic<bool> rolled_back{false};
  const auto t0 = SteadyClock::now();
  auto since = [&] { return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now() - t0).count(); };

  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i)
    clients.emplace_back([&] {
      auto c = client();
      auto fail = [&](std::string why) {
        ++failures;
        std::lock_guard lock(mutex);
        if (failure_text.size() < 10) failure_text.push_back(std::move(why));
      };
      auto made = c->Post("/v1/buffers", auth(), R"({"bytes": 4096})", "application/json");
      if (!made || made->status != 201) return fail("buffer: " + (made ? made->body : std::string("no answer")));
      const std::uint64_t b = json::parse(made->body)["id"];
      const std::string body = json{{"kernel", "stamp"}, {"function", "stamp"}, {"grid", 4}, {"block", 256}, {"wait", true},
                                    {"arguments", {{{"buffer", b}}, {{"type", "u32"}, {"value", 1024}}}}}
                                   .dump();
      while (!stop.load()) {
        auto r = c->Post("/v1/launches", auth(), body, "application/json");
        ++launches;
        if (!r || r->status != 200) {
          fail("launch: " + (r ? r->body : std::string("no answer")));
          continue;
        }
        const std::uint64_t version = json::parse(r->body)["package"]["version"];
        auto data = c->Get("/v1/buffers/" + std::to_string(b) + "/data", auth());
        if (!data || data->body.size() != 4096) {
          fail("download");
          continue;
        }
        std::vector<unsigned> v(1024);
        std::memcpy(v.data(), data->body.data(), 4096);
        for (unsigned x : v)
          if (x != version) {
            fail("dispatched to version " + std::to_string(version) + ", computed " + std::to_string(x));
            break;
          }
        std::int64_t none = 0;
        if (version == 2) first_v2_ns.compare_exchange_strong(none, since());
        none = 0;
        if (version == 1 && rolled_back.load()) first_v1_after_rollback_ns.compare_exchange_strong(none, since());
      }
    });

  auto wait_until = [&](auto done) {
    for (int i = 0; i < 60000 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return done();
  };
  ASSERT_TRUE(wait_until([&] { return launches.load() >= 1000; }));
  const std::int64_t published_ns = since();
  fs::rename(v2, repo_ / "stamp" / "2");
  ASSERT_TRUE(wait_until([&] { return first_v2_ns.load() != 0; })) << "version 2 never served";
  const std::uint64_t at_swap = launches.load();
  ASSERT_TRUE(wait_until([&] { return launches.load() >= at_swap + 1000; }));

  auto c = client();
  rolled_back.store(true);
  const std::int64_t rollback_ns = since();
  auto r = c->Post("/v1/repository/stamp/rollback", auth(), "", "application/json");
  const std::int64_t rollback_answered_ns = since();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  ASSERT_TRUE(wait_until([&] { return first_v1_after_rollback_ns.load() != 0; }));
  const std::uint64_t at_rollback = launches.load();
  ASSERT_TRUE(wait_until([&] { return launches.load() >= at_rollback + 1000; }));
  stop.store(true);
  for (std::thread& t : clients) t.join();

  EXPECT_EQ(failures.load(), 0u) << [&] {
    std::string all;
    for (const std::string& f : failure_text) all += f + "\n";
    return all;
  }();
  const double publish_ms = static_cast<double>(first_v2_ns.load() - published_ns) / 1e6;
  const double rollback_ms = static_cast<double>(rollback_answered_ns - rollback_ns) / 1e6;
  const double rollback_served_ms = static_cast<double>(first_v1_after_rollback_ns.load() - rollback_ns) / 1e6;
  const json p = json::parse(c->Get("/v1/repository/stamp", auth())->body);
  double load_ms = 0;
  for (const json& v : p["versions"])
    if (v["version"] == 2) load_ms = v.value("load_ms", 0.0);
  std::printf("[figures] repository hot swap: %d clients, %llu launches, %llu failed; version 2 published -> first "
              "result of it %.1f ms (poll 20 ms, load %.1f ms); rollback answered in %.2f ms, first result of "
              "version 1 after it %.2f ms\n",
              kClients, static_cast<unsigned long long>(launches.load()), static_cast<unsigned long long>(failures.load()),
              publish_ms, load_ms, rollback_ms, rollback_served_ms);
  EXPECT_EQ(p["serving"], 1);
  EXPECT_EQ(p["previous"], 2);
}

}  // namespace
}  // namespace kiln::testing
