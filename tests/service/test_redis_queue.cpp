// The shared queue on a real Redis: claims, leases, reclaiming a dead consumer's job, exactly one
// completion, and kernel registration through it end to end over HTTP (one node, in process).
#include <gtest/gtest.h>

#include <thread>

#include "kiln/driver/error.hpp"
#include "kiln/service/redis_client.hpp"
#include "kiln/service/redis_stream_queue.hpp"
#include "support/http_fixture.hpp"
#include "support/redis_server.hpp"

namespace kiln::testing {
namespace {

using namespace std::chrono_literals;
using service::RedisStreamQueue;
using service::StreamQueueOptions;

TEST(RedisUrl, ParsesTcpAndUnixAddresses) {
  auto a = service::parse_redis_url("redis://cache.internal:6380/2");
  EXPECT_EQ(a.host, "cache.internal");
  EXPECT_EQ(a.port, 6380);
  EXPECT_EQ(a.database, 2);
  EXPECT_EQ(a.text(), "redis://cache.internal:6380/2");
  auto b = service::parse_redis_url("redis://127.0.0.1");
  EXPECT_EQ(b.port, 6379);
  EXPECT_EQ(b.database, 0);
  auto c = service::parse_redis_url("unix:///run/redis/redis.sock?db=3");
  EXPECT_EQ(c.socket, "/run/redis/redis.sock");
  EXPECT_EQ(c.database, 3);
}

TEST(RedisUrl, RefusesWhatItCannotUse) {
  for (const char* url : {"http://x", "redis://", "redis://h:0", "redis://h:70000", "redis://h/x", "redis://u:p@h",
                          "unix://relative.sock", "memory"}) {
    try {
      service::parse_redis_url(url);
      ADD_FAILURE() << url << " was accepted";
    } catch (const Error& e) {
      EXPECT_TRUE(e.is(Errc::invalid_argument)) << e.what();
      EXPECT_NE(std::string(e.what()).find(url), std::string::npos) << e.what();
    }
  }
}

TEST(RedisClient, UnreachableServerNamesTheAddress) {
  TempDir dir;
  const std::string socket = (dir.path() / "nobody.sock").string();
  try {
    service::RedisClient client(service::parse_redis_url("unix://" + socket), 500ms);
    FAIL() << "connected to nothing";
  } catch (const Error& e) {
    EXPECT_TRUE(e.is(Errc::unavailable)) << e.what();
    EXPECT_NE(std::string(e.what()).find(socket), std::string::npos) << e.what();
  }
}

class RedisQueue : public ::testing::Test {
 protected:
  std::unique_ptr<RedisStreamQueue> make(std::chrono::milliseconds lease) {
    StreamQueueOptions o;
    o.prefix = prefix_;
    o.lease = lease;
    o.retention = 60s;
    return std::make_unique<RedisStreamQueue>(service::parse_redis_url(redis_.url()), o);
  }
  RedisServer redis_;
  const std::string prefix_ = redis_.unique_prefix();
};

TEST_F(RedisQueue, EnqueueClaimCompleteAndWait) {
  KILN_REQUIRE_REDIS(redis_);
  auto q = make(5s);
  const std::string payload("binary\0payload", 14);
  const auto id = q->enqueue(payload, "node-a", "alice");
  EXPECT_EQ(q->depth().waiting, 1u);
  auto job = q->claim("node-b/0", 100ms);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->id, id);
  EXPECT_EQ(job->payload, payload);
  EXPECT_EQ(job->origin, "node-a");
  EXPECT_EQ(job->deliveries, 1u);
  EXPECT_FALSE(job->reclaimed);
  EXPECT_EQ(q->depth().claimed, 1u);
  EXPECT_EQ(q->record(id).at("state"), "running");
  EXPECT_FALSE(q->claim("node-c/0", 50ms)) << "one job, handed out once";

  std::thread completer([&] {
    std::this_thread::sleep_for(50ms);
    EXPECT_TRUE(q->complete(*job, "node-b/0", {{"answer", std::string("ok\0!", 4)}}));
  });
  auto record = q->wait(id, 5s);
  completer.join();
  ASSERT_TRUE(record);
  EXPECT_EQ(record->at("answer"), std::string("ok\0!", 4));
  EXPECT_EQ(record->at("completed_by"), "node-b/0");
  EXPECT_EQ(record->at("completions"), "1");
  EXPECT_EQ(record->at("tenant"), "alice");
  EXPECT_EQ(q->depth().waiting + q->depth().claimed, 0u);
  EXPECT_FALSE(q->complete(*job, "node-b/0", {})) << "a second completion of the same job";
  EXPECT_EQ(q->record(id).at("completions"), "1");
}

TEST_F(RedisQueue, ASilentConsumersJobIsReclaimedAndItsLateResultRefused) {
  KILN_REQUIRE_REDIS(redis_);
  auto q = make(300ms);
  const auto id = q->enqueue("work", "node-a", "alice");
  auto first = q->claim("dead/0", 100ms);
  ASSERT_TRUE(first);
  EXPECT_FALSE(q->claim("alive/0", 50ms)) << "the lease still holds";
  std::this_thread::sleep_for(400ms);  // the first consumer renews nothing: its lease runs out
  auto second = q->claim("alive/0", 50ms);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->id, id);
  EXPECT_TRUE(second->reclaimed);
  EXPECT_EQ(second->deliveries, 2u);
  EXPECT_EQ(q->record(id).at("consumer"), "alive/0");

  EXPECT_FALSE(q->extend(*first, "dead/0")) << "the lease belongs to the new consumer";
  EXPECT_FALSE(q->complete(*first, "dead/0", {{"answer", "stale"}}));
  EXPECT_TRUE(q->complete(*second, "alive/0", {{"answer", "fresh"}}));
  const auto record = q->record(id);
  EXPECT_EQ(record.at("answer"), "fresh");
  EXPECT_EQ(record.at("completions"), "1");
  EXPECT_EQ(record.at("deliveries"), "2");
}

TEST_F(RedisQueue, RenewingTheLeaseKeepsTheJob) {
  KILN_REQUIRE_REDIS(redis_);
  auto q = make(300ms);
  q->enqueue("long work", "node-a", "alice");
  auto job = q->claim("busy/0", 100ms);
  ASSERT_TRUE(job);
  for (int i = 0; i < 6; ++i) {
    std::this_thread::sleep_for(100ms);
    ASSERT_TRUE(q->extend(*job, "busy/0"));
  }
  EXPECT_FALSE(q->claim("other/0", 50ms)) << "a renewed lease must not be taken over (600 ms > the 300 ms lease)";
  EXPECT_TRUE(q->complete(*job, "busy/0", {}));
}

TEST_F(RedisQueue, WaitingForAnUnfinishedJobTimesOut) {
  KILN_REQUIRE_REDIS(redis_);
  auto q = make(5s);
  const auto id = q->enqueue("never claimed", "node-a", "alice");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(q->wait(id, 200ms));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 190ms);
}

TEST_F(RedisQueue, ManyConsumersCompleteEveryJobOnce) {
  KILN_REQUIRE_REDIS(redis_);
  auto q = make(5s);
  constexpr int kJobs = 200;
  for (int i = 0; i < kJobs; ++i) q->enqueue("job " + std::to_string(i), "node-a", "alice");
  std::atomic<int> done{0};
  std::vector<std::thread> consumers;
  for (int c = 0; c < 4; ++c)
    consumers.emplace_back([&, c] {
      const std::string me = "node-" + std::to_string(c) + "/0";
      while (auto job = q->claim(me, 100ms))
        if (q->complete(*job, me, {{"payload_was", job->payload}})) ++done;
    });
  for (auto& t : consumers) t.join();
  EXPECT_EQ(done.load(), kJobs);
  for (int id = 1; id <= kJobs; ++id) {
    const auto record = q->record(static_cast<std::uint64_t>(id));
    EXPECT_EQ(record.at("completions"), "1") << "job " << id;
    EXPECT_EQ(record.at("payload_was"), "job " + std::to_string(id - 1));
  }
}

// One kilnd (in process) whose registrations go through the shared queue: the compile runs on a
// queue consumer and the serialized images come back through Redis.
class SharedQueueService : public ServiceFixture {
 protected:
  void SetUp() override {
    ServiceFixture::SetUp();
    if (redis_.url().empty()) return;
    config_.queue_url = redis_.url();
    config_.queue_prefix = redis_.unique_prefix();
    config_.node_name = "solo";
    config_.cluster_compile_threads = 1;
  }
  RedisServer redis_;
};

TEST_F(SharedQueueService, RegistrationCompilesThroughTheQueue) {
  KILN_REQUIRE_REDIS(redis_);
  start();
  auto ok = register_kernel({{"source", "template <int N> __global__ void fill(int* p) { p[threadIdx.x] = N; }"},
                             {"name_expressions", {"fill<7>"}}});
  ASSERT_TRUE(ok);
  ASSERT_EQ(ok->status, 201) << ok->body;
  auto body = body_of(ok);
  EXPECT_EQ(body["compiled_by"], "solo/0");
  EXPECT_TRUE(body["lowered_names"].contains("fill<7>")) << body.dump();
  auto fetched = body_of(get("/v1/kernels/" + std::to_string(body["id"].get<int>())));
  EXPECT_EQ(fetched["targets"][0]["arch"], "sm_90") << fetched.dump();

  auto bad = register_kernel({{"source", "__global__ void k() {\n  undeclared_thing();\n}"}});
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 422) << bad->body;
  auto error = body_of(bad)["error"];
  EXPECT_EQ(error["code"], "compile_failed");
  EXPECT_EQ(error["diagnostics"][0]["line"], 2) << error.dump();
  EXPECT_EQ(error["compiled_by"], "solo/0");

  auto refused = register_kernel({{"source", "#include \"/etc/passwd\"\n__global__ void k() {}"}});
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 422) << refused->body;
  EXPECT_EQ(body_of(refused)["error"]["code"], "source_policy");

  // The consumer counts a completion after Redis has woken the waiter: allow it a moment.
  std::string text;
  for (int i = 0; i < 200 && text.find("kiln_cluster_compile_jobs_total{event=\"completed\"} 3") == std::string::npos; ++i) {
    if (i) std::this_thread::sleep_for(10ms);
    auto metrics = get("/metrics", nullptr);
    ASSERT_TRUE(metrics);
    text = metrics->body;
  }
  EXPECT_NE(text.find("kiln_cluster_compile_jobs_total{event=\"completed\"} 3"), std::string::npos) << text;
}

TEST_F(SharedQueueService, NoConsumerWithinMaxWaitIs504WithTheJob) {
  KILN_REQUIRE_REDIS(redis_);
  config_.cluster_compile_threads = 0;  // this node only enqueues; no node compiles
  config_.max_wait = 300ms;
  start();
  auto r = register_kernel({{"source", "__global__ void k() {}"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 504) << r->body;
  auto error = body_of(r)["error"];
  EXPECT_EQ(error["code"], "compile_pending");
  EXPECT_EQ(error["job"], 1);
  EXPECT_NE(error["message"].get<std::string>().find("max_wait_ms (300)"), std::string::npos) << error.dump();
}

TEST_F(SharedQueueService, AJobThatOutlivedItsDeliveriesFailsInsteadOfRunningAgain) {
  KILN_REQUIRE_REDIS(redis_);
  config_.cluster_lease = 100ms;
  config_.cluster_max_deliveries = 1;
  // A node took the job and died with it (claimed, never renewed nor completed).
  StreamQueueOptions o;
  o.prefix = config_.queue_prefix;
  o.lease = config_.cluster_lease;
  RedisStreamQueue queue(service::parse_redis_url(redis_.url()), o);
  const std::string request = nlohmann::json{{"source", "__global__ void k() {}"}}.dump();
  const auto id = queue.enqueue(nlohmann::json{{"tenant", "alice"}, {"archs", {90}}, {"request", request}}.dump(),
                                "elsewhere", "alice");
  ASSERT_TRUE(queue.claim("crashed/0", 100ms));
  start();  // this node's consumer takes it over as the second delivery, one more than allowed
  auto record = queue.wait(id, 10s);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->at("status"), "500");
  EXPECT_EQ(record->at("completed_by"), "solo/0");
  EXPECT_NE(record->at("answer").find("compile_abandoned"), std::string::npos) << record->at("answer");
  EXPECT_NE(record->at("answer").find("handed out 2 times"), std::string::npos) << record->at("answer");
  EXPECT_EQ(record->count("image:90"), 0u) << "it must not have been compiled";
}

TEST(RedisClient, ARefusedCommandNamesItAndRedisMessage) {
  RedisServer redis;
  KILN_REQUIRE_REDIS(redis);
  service::RedisClient client(service::parse_redis_url(redis.url()));
  try {
    client.command({"NOSUCHCOMMAND", "x"});
    FAIL() << "Redis accepted an unknown command";
  } catch (const Error& e) {
    EXPECT_TRUE(e.is(Errc::unavailable)) << e.what();
    EXPECT_NE(std::string(e.what()).find("refused NOSUCHCOMMAND"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("unknown command"), std::string::npos) << e.what();
  }
  EXPECT_EQ(client.command({"PING"}).text, "PONG") << "the connection survives a refused command";
}

TEST(SharedQueueConfig, UnreachableRedisFailsAtStartWithTheAddress) {
  TempDir dir;
  service::ServiceConfig config;
  config.port = 0;
  config.cache_dir = dir.path() / "cache";
  config.queue_url = "unix://" + (dir.path() / "nobody.sock").string();
  service::NoGpuBackend backend("test machine without a GPU");
  try {
    service::Server server(config, service::TokenStore::single("t", "tttttttttttttttttttt"), backend);
    FAIL() << "started without its queue";
  } catch (const Error& e) {
    EXPECT_TRUE(e.is(Errc::unavailable)) << e.what();
    EXPECT_NE(std::string(e.what()).find("nobody.sock"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kiln::testing
