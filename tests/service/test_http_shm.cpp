// Client shared memory over loopback HTTP: real POSIX shared memory objects made here, registered
// with a real kilnd, tenant-scoped, bounds-checked, refused when allow_client_shm is off, dropped
// when the owner process ends, refused once truncated, and byte-identical copies between a region
// and a buffer. Buffers live on a stand-in GPU (support/fake_gpu.hpp: host bytes), as this machine
// has none; test_kilnd_gpu runs the same copies on the real one.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <numeric>

#include <nlohmann/json.hpp>

#include "kiln/service/server.hpp"
#include "support/fake_gpu.hpp"
#include "support/shared_object.hpp"
#include "support/http_fixture.hpp"

namespace kiln::testing {
namespace {

using nlohmann::json;

class HttpShm : public ::testing::Test {
 protected:
  void start(bool allow, std::size_t max_regions = 64) {
    service::ServiceConfig config;
    config.port = 0;
    config.cache_dir = dir_.path() / "cache";
    config.http_threads = 4;
    config.allow_client_shm = allow;
    config.max_shm_regions_per_tenant = max_regions;
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
  // POSTs and returns the status and the parsed body.
  std::pair<int, json> post(const std::string& path, const json& body, const char* token = kAliceToken) {
    auto r = client_->Post(path, auth(token), body.dump(), "application/json");
    if (!r) return {-1, json()};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  static int status_of(const httplib::Result& r) { return r ? r->status : -1; }
  std::uint64_t region(const SharedObject& o, std::uint64_t bytes, std::uint64_t offset = 0) {
    auto [status, body] = post("/v1/shm", {{"name", o.name()}, {"bytes", bytes}, {"offset", offset}});
    EXPECT_EQ(status, 201) << body.dump();
    return body.value("id", std::uint64_t{0});
  }

  TempDir dir_;
  FakeGpu gpu_;
  std::unique_ptr<service::Server> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(HttpShm, RefusedUnlessTheServiceAllowsIt) {
  start(false);
  SharedObject o(4096);
  auto [status, body] = post("/v1/shm", {{"name", o.name()}, {"bytes", 4096}});
  EXPECT_EQ(status, 403) << body.dump();
  EXPECT_EQ(body["error"]["code"], "forbidden") << body.dump();
  EXPECT_NE(body.dump().find("allow_client_shm"), std::string::npos) << body.dump();
}

TEST_F(HttpShm, ARegionIsTheTenantsOwnUntilUnregistered) {
  start(true);
  SharedObject o(1 << 16);
  const std::uint64_t id = region(o, 1 << 16);
  auto got = client_->Get("/v1/shm/" + std::to_string(id), auth(kAliceToken));
  ASSERT_EQ(status_of(got), 200);
  const json info = json::parse(got->body);
  EXPECT_EQ(info["name"], o.name());
  EXPECT_EQ(info["bytes"], 1 << 16);
  EXPECT_EQ(info["pinned"], false);  // no GPU here to pin it for
  // Another tenant sees nothing, and cannot unregister it.
  EXPECT_EQ(status_of(client_->Get("/v1/shm/" + std::to_string(id), auth(kBobToken))), 404);
  EXPECT_EQ(status_of(client_->Delete("/v1/shm/" + std::to_string(id), auth(kBobToken))), 404);
  EXPECT_EQ(json::parse(client_->Get("/v1/shm", auth(kAliceToken))->body)["regions"].size(), 1u);
  EXPECT_EQ(json::parse(client_->Get("/v1/shm", auth(kBobToken))->body)["regions"].size(), 0u);
  EXPECT_EQ(status_of(client_->Delete("/v1/shm/" + std::to_string(id), auth(kAliceToken))), 204);
  EXPECT_EQ(status_of(client_->Get("/v1/shm/" + std::to_string(id), auth(kAliceToken))), 404);
  EXPECT_EQ(json::parse(client_->Get("/v1/shm", auth(kAliceToken))->body)["regions"].size(), 0u);
}

TEST_F(HttpShm, BadNamesSizesAndOwnersAreRefusedNamingTheField) {
  start(true, 2);
  SharedObject o(8192);
  struct Case {
    json body;
    std::string field;
    std::string says;
  };
  const Case cases[] = {
      {{{"name", "no-slash"}, {"bytes", 16}}, "name", "must start with '/'"},
      {{{"name", "/a/b"}, {"bytes", 16}}, "name", "no '/'"},
      {{{"name", "/kiln-test-no-such-object"}, {"bytes", 16}}, "name", "No such file"},
      {{{"name", o.name()}, {"bytes", 8193}}, "bytes", "holds 8192 bytes"},
      {{{"name", o.name()}, {"bytes", 4096}, {"offset", 4097}}, "bytes", "fewer than offset 4097"},
      {{{"name", o.name()}, {"bytes", 0}}, "bytes", "at least 1"},
      {{{"name", o.name()}}, "bytes", "missing"},
      {{{"name", o.name()}, {"bytes", 16}, {"size", 1}}, "size", "unknown field"},
  };
  for (const Case& c : cases) {
    auto [status, body] = post("/v1/shm", c.body);
    EXPECT_EQ(status, 400) << c.body.dump() << " -> " << body.dump();
    EXPECT_EQ(body["error"].value("field", ""), c.field) << body.dump();
    EXPECT_NE(body.dump().find(c.says), std::string::npos) << body.dump();
  }
  // A process that has ended cannot own a region.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  auto [status, body] = post("/v1/shm", {{"name", o.name()}, {"bytes", 16}, {"owner_pid", child}});
  EXPECT_EQ(status, 400) << body.dump();
  EXPECT_EQ(body["error"].value("field", ""), "owner_pid");
  // At most max_shm_regions_per_tenant (2), per tenant.
  region(o, 16);
  region(o, 16);
  EXPECT_EQ(post("/v1/shm", {{"name", o.name()}, {"bytes", 16}}).first, 429);
  EXPECT_EQ(post("/v1/shm", {{"name", o.name()}, {"bytes", 16}}, kBobToken).first, 201);
}

TEST_F(HttpShm, CopiesBetweenARegionAndABufferAreByteIdentical) {
  start(true);
  constexpr std::size_t kBytes = 3 << 20;
  SharedObject o(kBytes + 8192);
  // The region starts at an offset no page begins at, as mmap's does not need to.
  const std::uint64_t id = region(o, kBytes, 100);
  unsigned char* base = o.data() + 100;
  for (std::size_t i = 0; i < kBytes; ++i) base[i] = static_cast<unsigned char>((i * 2654435761u) >> 13);
  auto [bs, buffer] = post("/v1/buffers", {{"bytes", kBytes}});
  ASSERT_EQ(bs, 201) << buffer.dump();
  const std::string copy = "/v1/buffers/" + std::to_string(buffer["id"].get<std::uint64_t>()) + "/shm";

  auto [up, up_body] = post(copy, {{"direction", "upload"}, {"region", id}});
  ASSERT_EQ(up, 200) << up_body.dump();
  EXPECT_EQ(up_body["bytes"], kBytes);
  // The buffer holds the region's bytes (read back through an HTTP body, the other path).
  auto data = client_->Get(copy.substr(0, copy.size() - 4) + "/data", auth(kAliceToken));
  ASSERT_EQ(status_of(data), 200);
  ASSERT_EQ(data->body.size(), kBytes);
  EXPECT_EQ(std::memcmp(data->body.data(), base, kBytes), 0);

  // Download a middle range of the buffer into another place of the region.
  std::vector<unsigned char> expected(base + 1000, base + 1000 + 5000);
  std::memset(base, 0, kBytes);
  auto [down, down_body] =
      post(copy, {{"direction", "download"}, {"region", id}, {"offset", 1000}, {"region_offset", 7}, {"bytes", 5000}});
  ASSERT_EQ(down, 200) << down_body.dump();
  EXPECT_EQ(std::memcmp(base + 7, expected.data(), expected.size()), 0);
  EXPECT_EQ(base[6], 0);
  EXPECT_EQ(base[7 + 5000], 0);

  // Overruns of either side, an unknown region, another tenant's region: refused, nothing copied.
  auto [over, over_body] = post(copy, {{"direction", "upload"}, {"region", id}, {"offset", 1}});
  EXPECT_EQ(over, 400) << over_body.dump();
  EXPECT_EQ(over_body["error"].value("field", ""), "bytes");
  EXPECT_EQ(post(copy, {{"direction", "upload"}, {"region", id}, {"region_offset", kBytes + 1}}).first, 400);
  EXPECT_EQ(post(copy, {{"direction", "sideways"}, {"region", id}}).first, 400);
  auto [none, none_body] = post(copy, {{"direction", "upload"}, {"region", id + 100}});
  EXPECT_EQ(none, 404) << none_body.dump();
  EXPECT_EQ(none_body["error"].value("field", ""), "region");
  auto [bob_buffer_status, bob_buffer] = post("/v1/buffers", {{"bytes", 16}}, kBobToken);
  ASSERT_EQ(bob_buffer_status, 201);
  EXPECT_EQ(post("/v1/buffers/" + std::to_string(bob_buffer["id"].get<std::uint64_t>()) + "/shm",
                 {{"direction", "download"}, {"region", id}, {"bytes", 16}}, kBobToken)
                .first,
            404);
}

TEST_F(HttpShm, ARegionEndsWithItsOwnerProcess) {
  start(true);
  SharedObject o(4096);
  const pid_t owner = ::fork();
  if (owner == 0) {
    ::pause();
    ::_exit(0);
  }
  auto [status, body] = post("/v1/shm", {{"name", o.name()}, {"bytes", 4096}, {"owner_pid", owner}});
  ASSERT_EQ(status, 201) << body.dump();
  EXPECT_EQ(body["owner_pid"], owner);
  const std::string path = "/v1/shm/" + std::to_string(body["id"].get<std::uint64_t>());
  EXPECT_EQ(status_of(client_->Get(path, auth(kAliceToken))), 200);
  ::kill(owner, SIGKILL);
  ASSERT_EQ(::waitpid(owner, nullptr, 0), owner);
  EXPECT_EQ(status_of(client_->Get(path, auth(kAliceToken))), 404);
}

TEST_F(HttpShm, ATruncatedObjectIsRefusedNotRead) {
  start(true);
  SharedObject o(1 << 20);
  const std::uint64_t id = region(o, 1 << 20);
  auto [bs, buffer] = post("/v1/buffers", {{"bytes", 1 << 20}});
  ASSERT_EQ(bs, 201);
  o.truncate(4096);  // reading the mapping past here would be SIGBUS
  auto [status, body] =
      post("/v1/buffers/" + std::to_string(buffer["id"].get<std::uint64_t>()) + "/shm", {{"direction", "upload"}, {"region", id}});
  EXPECT_EQ(status, 400) << body.dump();
  EXPECT_NE(body.dump().find("truncated"), std::string::npos) << body.dump();
}

}  // namespace
}  // namespace kiln::testing
