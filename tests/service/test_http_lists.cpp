// GET /v1/kernels, /v1/buffers and /v1/jobs over loopback HTTP: the caller's items only, in id
// order, paged with after/limit; on a stand-in GPU (support/fake_gpu.hpp) so buffers and jobs exist.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "jit/kernels.hpp"
#include "kiln/service/server.hpp"
#include "support/fake_gpu.hpp"
#include "support/http_fixture.hpp"

namespace kiln::testing {
namespace {

using nlohmann::json;

using jit::test_kernels::kSaxpy;

class HttpLists : public ::testing::Test {
 protected:
  void SetUp() override {
    service::ServiceConfig config;
    config.port = 0;
    config.cache_dir = dir_.path() / "cache";
    config.http_threads = 4;
    config.drain_timeout = std::chrono::milliseconds(200);
    const std::string tokens = std::string("alice ") + kAliceToken + "\nbob " + kBobToken + "\n";
    server_ = std::make_unique<service::Server>(config, service::TokenStore::parse(tokens, "test tokens"), gpu_);
    server_->start();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(std::chrono::seconds(60));
  }
  void TearDown() override {
    client_.reset();
    if (server_) server_->stop();
  }
  static httplib::Headers auth(const char* token) { return {{"Authorization", std::string("Bearer ") + token}}; }
  json get_json(const std::string& path, const char* token, int expected = 200) {
    auto r = client_->Get(path, auth(token));
    EXPECT_TRUE(r);
    if (!r) return {};
    EXPECT_EQ(r->status, expected) << path << ": " << r->body;
    return json::parse(r->body, nullptr, false);
  }
  std::uint64_t post_id(const std::string& path, const json& body, const char* token) {
    auto r = client_->Post(path, auth(token), body.dump(), "application/json");
    EXPECT_TRUE(r);
    if (!r) return 0;
    EXPECT_TRUE(r->status == 201 || r->status == 200) << path << ": " << r->body;
    return json::parse(r->body).value("id", std::uint64_t{0});
  }
  std::vector<std::uint64_t> ids(const json& list, const char* name) {
    std::vector<std::uint64_t> out;
    for (const json& item : list[name]) out.push_back(item["id"].get<std::uint64_t>());
    return out;
  }

  TempDir dir_;
  FakeGpu gpu_;
  std::unique_ptr<service::Server> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(HttpLists, KernelsAreTheCallersOnlyAndPaged) {
  const auto a1 = post_id("/v1/kernels", {{"source", kSaxpy}, {"name", "a1.cu"}}, kAliceToken);
  const auto b1 = post_id("/v1/kernels", {{"source", kSaxpy}, {"name", "b1.cu"}}, kBobToken);
  const auto a2 = post_id("/v1/kernels", {{"source", kSaxpy}, {"name", "a2.cu"}}, kAliceToken);

  const json alice = get_json("/v1/kernels", kAliceToken);
  EXPECT_EQ(ids(alice, "kernels"), (std::vector<std::uint64_t>{a1, a2}));
  EXPECT_TRUE(alice["next_after"].is_null());
  EXPECT_EQ(alice["kernels"][0]["name"], "a1.cu");
  EXPECT_EQ(alice["kernels"][0]["targets"][0]["arch"], "sm_90");
  EXPECT_EQ(ids(get_json("/v1/kernels", kBobToken), "kernels"), (std::vector<std::uint64_t>{b1}));

  const json first = get_json("/v1/kernels?limit=1", kAliceToken);
  EXPECT_EQ(ids(first, "kernels"), (std::vector<std::uint64_t>{a1}));
  ASSERT_EQ(first["next_after"], a1);
  const json second = get_json("/v1/kernels?limit=1&after=" + std::to_string(a1), kAliceToken);
  EXPECT_EQ(ids(second, "kernels"), (std::vector<std::uint64_t>{a2}));

  auto gone = client_->Delete("/v1/kernels/" + std::to_string(a1), auth(kAliceToken));
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->status, 204);
  EXPECT_EQ(ids(get_json("/v1/kernels", kAliceToken), "kernels"), (std::vector<std::uint64_t>{a2}));
}

TEST_F(HttpLists, BuffersAreTheCallersOnly) {
  const auto a = post_id("/v1/buffers", {{"bytes", 64}, {"tag", "x"}}, kAliceToken);
  const auto b = post_id("/v1/buffers", {{"bytes", 32}}, kBobToken);
  const json alice = get_json("/v1/buffers", kAliceToken);
  ASSERT_EQ(ids(alice, "buffers"), (std::vector<std::uint64_t>{a}));
  EXPECT_EQ(alice["buffers"][0]["bytes"], 64);
  EXPECT_EQ(alice["buffers"][0]["tag"], "x");
  EXPECT_EQ(ids(get_json("/v1/buffers", kBobToken), "buffers"), (std::vector<std::uint64_t>{b}));
}

TEST_F(HttpLists, JobsAreTheCallersOnly) {
  const auto kernel = post_id("/v1/kernels", {{"source", kSaxpy}}, kAliceToken);
  const auto buffer = post_id("/v1/buffers", {{"bytes", 64}}, kAliceToken);
  const json launch = {{"kernel", kernel},
                       {"function", "saxpy"},
                       {"wait", true},
                       {"arguments", {{{"type", "f32"}, {"value", 2.0}}, {{"buffer", buffer}}, {{"buffer", buffer}},
                                      {{"type", "i32"}, {"value", 16}}}}};
  const auto job = post_id("/v1/launches", launch, kAliceToken);
  ASSERT_NE(job, 0u);
  const json alice = get_json("/v1/jobs", kAliceToken);
  ASSERT_EQ(ids(alice, "jobs"), (std::vector<std::uint64_t>{job}));
  EXPECT_EQ(alice["jobs"][0]["state"], "finished");
  EXPECT_EQ(alice["jobs"][0]["status"], "completed");
  EXPECT_TRUE(get_json("/v1/jobs", kBobToken)["jobs"].empty());
}

TEST_F(HttpLists, BadPagingAndNoTokenAreRefused) {
  EXPECT_EQ(get_json("/v1/jobs?limit=0", kAliceToken, 400)["error"]["field"], "limit");
  EXPECT_EQ(get_json("/v1/kernels?after=-1", kAliceToken, 400)["error"]["field"], "after");
  EXPECT_EQ(get_json("/v1/buffers?limit=99999", kAliceToken)["buffers"].size(), 0u) << "a limit past 1000 is cut to it";
  auto r = client_->Get("/v1/buffers");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
}

}  // namespace
}  // namespace kiln::testing
