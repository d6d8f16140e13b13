// Two real kilnd processes sharing one Redis queue; one is killed (SIGKILL) while it compiles.
// Every job still completes exactly once: the survivor takes the dead node's job over when its
// lease runs out, and also runs the jobs the dead node had accepted but not started. The clients
// of the surviving node get every answer; the dead node's clients lose their connection, not
// their jobs (the records show them completed).
#include <gtest/gtest.h>
#include <httplib.h>

#include <fstream>
#include <future>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "kiln/service/redis_client.hpp"
#include "support/child.hpp"
#include "support/http_fixture.hpp"
#include "support/redis_server.hpp"

namespace kiln::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kToken = "cluster-token-0123456789";

// A CUB block reduction: about a second of NVRTC, long enough to be killed in the middle of.
// `n` makes each source (and so each cache key) distinct.
std::string slow_kernel(int n) {
  return "#include <cub/block/block_reduce.cuh>\n"
         "extern \"C\" __global__ void sum" + std::to_string(n) + "(const float* in, float* out) {\n"
         "  using Reduce = cub::BlockReduce<float, 256>;\n"
         "  __shared__ typename Reduce::TempStorage scratch;\n"
         "  float v = Reduce(scratch).Sum(in[threadIdx.x] * " + std::to_string(n) + ".0f);\n"
         "  if (threadIdx.x == 0) out[blockIdx.x] = v;\n"
         "}\n";
}

struct Node {
  std::unique_ptr<Child> process;
  int port = 0;
};

Node start_node(const std::string& name, const TempDir& dir, const std::string& url) {
  std::vector<std::string> argv = {KILND_PATH,      "--port",  "0",
                                   "--tokens",      (dir.path() / "tokens").string(),
                                   "--config",      (dir.path() / "cluster.json").string(),
                                   "--cache-dir",   (dir.path() / ("cache-" + name)).string(),
                                   "--queue",       url,
                                   "--node-name",   name,
                                   "--log-file",    (dir.path() / (name + ".log")).string()};
  Node node;
  node.process = std::make_unique<Child>(argv);
  std::string transcript;
  const std::string port = node.process->wait_for(std::regex("listening on http://127\\.0\\.0\\.1:([0-9]+)"), transcript);
  EXPECT_FALSE(port.empty()) << transcript;
  EXPECT_NE(transcript.find("shared queue at " + url), std::string::npos) << transcript;
  node.port = port.empty() ? 0 : std::stoi(port);
  return node;
}

httplib::Result register_on(int port, const std::string& source) {
  httplib::Client client("127.0.0.1", port);
  // A bound for failure only: under stress-ng on a 2-core machine one CUB compile took ~100 s.
  client.set_read_timeout(1200s);
  return client.Post("/v1/kernels", {{"Authorization", std::string("Bearer ") + kToken}},
                     json{{"source", source}}.dump(), "application/json");
}

TEST(KilndCluster, ANodeKilledMidCompileLosesNoJobAndNoneCompletesTwice) {
  RedisServer redis;
  KILN_REQUIRE_REDIS(redis);
  TempDir dir;
  const std::string prefix = redis.unique_prefix();
  std::ofstream(dir.path() / "tokens") << "ops " << kToken << "\n";
  std::filesystem::permissions(dir.path() / "tokens", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  // Generous bounds: they only decide when a stuck test fails, never whether a slow one passes.
  std::ofstream(dir.path() / "cluster.json")
      << json{{"queue_prefix", prefix}, {"cluster_lease_ms", 2000}, {"cluster_compile_threads", 1},
              {"max_wait_ms", 1200000}, {"job_retention_s", 7200}, {"log_format", "json"},
              {"source_policy", {{"max_compile_time_ms", 1200000}}}}.dump();
  Node a = start_node("node-a", dir, redis.url());
  Node b = start_node("node-b", dir, redis.url());
  ASSERT_TRUE(a.port && b.port);

  // Two registrations through A and two through B, all at once: A compiles at most four (its own
  // and B's), one after another on its one consumer.
  constexpr int kThroughA = 2, kThroughB = 2;
  std::vector<std::future<httplib::Result>> through_a, through_b;
  for (int i = 0; i < kThroughA; ++i)
    through_a.push_back(std::async(std::launch::async, register_on, a.port, slow_kernel(i)));
  for (int i = 0; i < kThroughB; ++i)
    through_b.push_back(std::async(std::launch::async, register_on, b.port, slow_kernel(100 + i)));

  // Kill B the moment it is compiling one of them.
  service::RedisClient watcher(service::parse_redis_url(redis.url()));
  constexpr int kJobs = kThroughA + kThroughB;
  std::string killed_job;
  const auto give_up = std::chrono::steady_clock::now() + 300s;
  while (killed_job.empty() && std::chrono::steady_clock::now() < give_up) {
    for (int id = 1; id <= kJobs && killed_job.empty(); ++id) {
      const auto r = watcher.command({"HMGET", prefix + ":compile:job:" + std::to_string(id), "state", "consumer"});
      if (r.at(0).text == "running" && r.at(1).text == "node-b/0") killed_job = std::to_string(id);
    }
    if (killed_job.empty()) std::this_thread::sleep_for(10ms);
  }
  ASSERT_FALSE(killed_job.empty()) << "node B never took a compile job";
  b.process->kill_now();

  for (auto& f : through_a) {
    auto r = f.get();
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 201) << r->body;
  }
  for (auto& f : through_b) f.get();  // B's clients: cut off or answered before the kill; either is fine

  // Every job, whoever accepted it, completes once; the one B died holding was delivered twice
  // and completed by A. B may have died before one of its own clients' registrations became a job
  // (its consumer can take A's first job that early): the jobs are those the queue numbered.
  const int jobs = std::stoi(watcher.command({"GET", prefix + ":compile:next"}).text);
  // At least A's registrations, and the job B died holding among them (it may be one of A's: then
  // none of B's own may have become a job, and the count is A's alone).
  EXPECT_GE(jobs, kThroughA) << "A's registrations";
  EXPECT_GE(jobs, std::stoi(killed_job)) << "the job B died holding is one the queue numbered";
  EXPECT_LE(jobs, kJobs);
  for (int id = 1; id <= jobs; ++id) {
    const std::string key = prefix + ":compile:job:" + std::to_string(id);
    service::RedisReply r;
    for (auto until = std::chrono::steady_clock::now() + 1200s; std::chrono::steady_clock::now() < until;
         std::this_thread::sleep_for(50ms)) {
      r = watcher.command({"HMGET", key, "state", "completions", "completed_by", "deliveries", "status"});
      if (r.at(0).text == "done") break;
    }
    EXPECT_EQ(r.at(0).text, "done") << "job " << id << " was lost";
    EXPECT_EQ(r.at(1).text, "1") << "job " << id << " completions";
    EXPECT_EQ(r.at(4).text, "201") << "job " << id;
    if (std::to_string(id) == killed_job) {
      EXPECT_EQ(r.at(2).text, "node-a/0") << "the job B died holding";
      EXPECT_EQ(r.at(3).text, "2") << "the job B died holding";
    }
  }
  const auto pending = watcher.command({"XPENDING", prefix + ":compile:stream", "kilnd"});
  EXPECT_EQ(pending.at(0).integer, 0) << "jobs left under a lease";

  httplib::Client client("127.0.0.1", a.port);
  auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(metrics->body, m, std::regex("kiln_cluster_compile_jobs_total\\{event=\"reclaimed\"\\} ([0-9]+)")))
      << metrics->body;
  EXPECT_GE(std::stoi(m[1].str()), 1) << metrics->body;
  EXPECT_EQ(a.process->terminate(), 0);

  // A's log (JSON lines, from the config file's log_format) says it took B's job over.
  std::ifstream log(dir.path() / "node-a.log");
  std::string all, line;
  int takeovers = 0;
  while (std::getline(log, line)) {
    all += line + "\n";
    const json j = json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << line;
    if (j.value("event", "") == "cluster_takeover" && std::to_string(j.value("job", 0)) == killed_job) {
      ++takeovers;
      EXPECT_EQ(j["level"], "warn");
      EXPECT_EQ(j["consumer"], "node-a/0");
      EXPECT_EQ(j["deliveries"], 2);
    }
  }
  EXPECT_EQ(takeovers, 1) << all;
  EXPECT_EQ(all.find(kToken), std::string::npos) << all;
}

}  // namespace
}  // namespace kiln::testing
