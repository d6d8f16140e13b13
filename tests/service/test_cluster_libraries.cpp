// Kernels with device libraries through the shared compile queue (in-process kilnd nodes on one
// Redis): the node that compiles links its own library of the same name and digest, and refuses
// (503 library_unavailable) when it has none or another one.
#include <fstream>

#include "jit/link_kernels.hpp"
#include "kiln/service/token_store.hpp"
#include "support/http_fixture.hpp"
#include "support/redis_server.hpp"

namespace kiln::testing {
namespace {

using nlohmann::json;
using namespace kiln::jit::test_kernels;
namespace fs = std::filesystem;

void write(const fs::path& file, std::string_view text) { std::ofstream(file, std::ios::binary) << text; }

class ClusterLibraries : public ServiceFixture {
 protected:
  void SetUp() override {
    ServiceFixture::SetUp();
    write(dir_.path() / "scale_add.cu", kLibrarySource);
    write(dir_.path() / "other.cu", kSecondDefinitionSource);
    write(dir_.path() / "scale_add.cuh", kLibraryHeader);
    config_.device_libraries = {{"scale_add", library("scale_add.cu")}};
    if (redis_.url().empty()) return;
    config_.queue_url = redis_.url();
    config_.queue_prefix = redis_.unique_prefix();
    config_.node_name = "a";
    config_.cluster_compile_threads = 1;
  }
  void TearDown() override {
    other_.reset();
    ServiceFixture::TearDown();
  }
  service::DeviceLibraryConfig library(const char* file) {
    service::DeviceLibraryConfig lib;
    lib.source = dir_.path() / file;
    lib.headers["scale_add.cuh"] = dir_.path() / "scale_add.cuh";
    return lib;
  }
  // This node only enqueues; node "b", configured with `libraries`, compiles every job.
  void start_pair(std::map<std::string, service::DeviceLibraryConfig> libraries) {
    service::ServiceConfig b = config_;
    b.node_name = "b";
    b.cache_dir = dir_.path() / "cache-b";
    b.device_libraries = std::move(libraries);
    other_ = std::make_unique<service::Server>(b, service::TokenStore::parse(std::string("alice ") + kAliceToken + "\n", "t"),
                                               backend_);
    other_->start();
    config_.cluster_compile_threads = 0;
    start();
  }
  json caller(const char* source = kCallerSource) {
    return {{"name", "caller.cu"}, {"source", source}, {"libraries", {"scale_add"}}};
  }

  RedisServer redis_;
  std::unique_ptr<service::Server> other_;
};

TEST_F(ClusterLibraries, ARegistrationWithALibraryLinksOnTheConsumingNode) {
  KILN_REQUIRE_REDIS(redis_);
  start();
  auto r = register_kernel(caller());
  ASSERT_EQ(r->status, 201) << r->body;
  const json body = body_of(r);
  EXPECT_EQ(body["compiled_by"], "a/0");
  EXPECT_EQ(body["targets"][0]["kind"], "cubin");
  EXPECT_EQ(body["libraries"], json::array({"scale_add"}));

  auto undefined = register_kernel(caller(kUndefinedCallerSource));
  ASSERT_EQ(undefined->status, 422) << undefined->body;
  EXPECT_EQ(body_of(undefined)["error"]["stage"], "link");
  EXPECT_EQ(body_of(undefined)["error"]["link_diagnostics"][0]["symbol"], "nobody_defines_this");
}

TEST_F(ClusterLibraries, AnotherNodeWithTheSameLibraryLinksIt) {
  KILN_REQUIRE_REDIS(redis_);
  start_pair({{"scale_add", library("scale_add.cu")}});
  auto r = register_kernel(caller());
  ASSERT_EQ(r->status, 201) << r->body;
  EXPECT_EQ(body_of(r)["compiled_by"], "b/0");
}

TEST_F(ClusterLibraries, ANodeWhoseLibraryDiffersRefuses) {
  KILN_REQUIRE_REDIS(redis_);
  start_pair({{"scale_add", library("other.cu")}});
  auto r = register_kernel(caller());
  ASSERT_EQ(r->status, 503) << r->body;
  const json e = body_of(r)["error"];
  EXPECT_EQ(e["code"], "library_unavailable");
  EXPECT_EQ(e["compiled_by"], "b/0");
  EXPECT_NE(e["message"].get<std::string>().find("node b has another device library 'scale_add'"), std::string::npos)
      << e.dump();
}

TEST_F(ClusterLibraries, ANodeWithoutTheLibraryRefuses) {
  KILN_REQUIRE_REDIS(redis_);
  start_pair({});
  auto r = register_kernel(caller());
  ASSERT_EQ(r->status, 503) << r->body;
  EXPECT_NE(body_of(r)["error"]["message"].get<std::string>().find("node b has no device library 'scale_add'"),
            std::string::npos)
      << r->body;
  // Names this node does not know are refused here, before any job is queued.
  auto unknown = register_kernel({{"source", kCallerSource}, {"libraries", {"nope"}}});
  ASSERT_EQ(unknown->status, 404) << unknown->body;
  EXPECT_EQ(body_of(unknown)["error"]["field"], "libraries[0]");
}

}  // namespace
}  // namespace kiln::testing
