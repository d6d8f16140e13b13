// The status page's data and shell over loopback HTTP: GET /v1/status needs a token and answers the
// service's real numbers (they change with registrations and launches), the no-GPU reason, the
// last failures with kiln's explanation and hint (the caller's own and the machine's only), and
// the topology picture; GET / and its files need no token and carry a Content-Security-Policy that
// forbids outside sources. RecentActivity (the last minute's launches, the failure ring) is tested
// on its own with chosen times.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "kiln/driver/error.hpp"
#include "kiln/service/recent_activity.hpp"
#include "kiln/service/server.hpp"
#include "kiln/topology/svg.hpp"
#include "kiln/topology/topology.hpp"
#include "support/fake_gpu.hpp"
#include "support/http_fixture.hpp"

namespace kiln::testing {
namespace {

using nlohmann::json;
using service::RecentActivity;
using service::RecentFailure;

constexpr const char* kNoop = R"(extern "C" __global__ void noop(int n) { })";

// Every member the OpenAPI schema requires is in `value`, with the schema's JSON type, into nested
// objects and array items; `where` names the place for the failure message.
void expect_matches(const json& schema, const json& value, const std::string& where) {
  if (value.is_null()) {
    EXPECT_TRUE(schema.value("nullable", false)) << where << " is null";
    return;
  }
  const std::string type = schema.value("type", "");
  if (type == "object") {
    ASSERT_TRUE(value.is_object()) << where << ": " << value;
    for (const auto& key : schema.value("required", json::array())) {
      const std::string k = key.get<std::string>();
      EXPECT_TRUE(value.contains(k)) << where << "." << k << " missing";
      if (value.contains(k) && schema.contains("properties") && schema["properties"].contains(k))
        expect_matches(schema["properties"][k], value[k], where + "." + k);
    }
  } else if (type == "array") {
    ASSERT_TRUE(value.is_array()) << where;
    for (std::size_t i = 0; i < value.size(); ++i) expect_matches(schema["items"], value[i], where + "[" + std::to_string(i) + "]");
  } else if (type == "integer") {
    EXPECT_TRUE(value.is_number_integer()) << where << ": " << value;
  } else if (type == "number") {
    EXPECT_TRUE(value.is_number()) << where << ": " << value;
  } else if (type == "string") {
    EXPECT_TRUE(value.is_string()) << where << ": " << value;
  } else if (type == "boolean") {
    EXPECT_TRUE(value.is_boolean()) << where << ": " << value;
  }
}

json status_schema() {
  std::ifstream in(KILN_OPENAPI_PATH);
  return json::parse(in)["components"]["schemas"]["Status"];
}

class StatusPage : public ServiceFixture {
 protected:
  json status(const char* token = kAliceToken) {
    auto r = get("/v1/status", token);
    EXPECT_TRUE(r);
    if (!r) return {};
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
    EXPECT_EQ(r->get_header_value("Cache-Control"), "no-store");
    return body_of(r);
  }
  httplib::Result launch_noop(std::uint64_t kernel) {
    return post("/v1/launches", json{{"kernel", kernel}, {"function", "noop"},
                                     {"arguments", json::array({{{"type", "i32"}, {"value", 1}}})}, {"wait", true}}
                                    .dump());
  }
};

TEST_F(StatusPage, DataNeedsATokenTheShellDoesNot) {
  start();
  for (const char* path : {"/v1/status", "/v1/status/topology.svg"}) {
    auto none = client_->Get(path);
    ASSERT_TRUE(none);
    EXPECT_EQ(none->status, 401) << path;
    EXPECT_FALSE(none->get_header_value("WWW-Authenticate").empty()) << path;
    auto wrong = client_->Get(path, auth("not-a-token-of-this-service"));
    ASSERT_TRUE(wrong);
    EXPECT_EQ(wrong->status, 401) << path;
  }

  auto page = client_->Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(page->body.find("<script src=\"/status/app.js\""), std::string::npos) << page->body;
  EXPECT_NE(page->body.find("id=\"token\""), std::string::npos);
  const struct {
    const char* path;
    const char* type;
    const char* sample;  // text each file must hold
  } files[] = {{"/", "text/html; charset=utf-8", "<html"},
               {"/status/app.js", "text/javascript; charset=utf-8", "/v1/status"},
               {"/status/app.css", "text/css; charset=utf-8", "font"}};
  for (const auto& f : files) {
    auto r = client_->Get(f.path);
    ASSERT_TRUE(r) << f.path;
    EXPECT_EQ(r->status, 200) << f.path;
    EXPECT_EQ(r->get_header_value("Content-Type"), f.type) << f.path;
    EXPECT_NE(r->body.find(f.sample), std::string::npos) << f.path;
    const std::string csp = r->get_header_value("Content-Security-Policy");
    EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << f.path << ": " << csp;
    EXPECT_NE(csp.find("script-src 'self'"), std::string::npos) << csp;
    EXPECT_NE(csp.find("connect-src 'self'"), std::string::npos) << csp;
    EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos) << csp;
    EXPECT_EQ(csp.find("http"), std::string::npos) << "no outside source is allowed: " << csp;
    EXPECT_EQ(r->get_header_value("X-Content-Type-Options"), "nosniff") << f.path;
    // Everything comes from kilnd: no address of anywhere else in the files.
    EXPECT_EQ(r->body.find("http://"), std::string::npos) << f.path;
    EXPECT_EQ(r->body.find("https://"), std::string::npos) << f.path;
    EXPECT_EQ(r->body.find("innerHTML"), std::string::npos) << f.path << ": service text is set as text only";
  }
  auto head = client_->Head("/");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_TRUE(head->body.empty());
  auto post_page = client_->Post("/", "", "text/plain");
  ASSERT_TRUE(post_page);
  EXPECT_EQ(post_page->status, 405);
}

TEST_F(StatusPage, NoGpuSaysWhyAndNumbersFollowTheWork) {
  start();
  json s = status();
  ASSERT_TRUE(s.is_object());
  for (const char* key : {"node", "uptime_s", "ready", "reason", "gpu", "devices", "queue", "launches", "kernels", "cache",
                          "topology", "failures", "cluster"})
    EXPECT_TRUE(s.contains(key)) << key << " missing: " << s.dump();
  EXPECT_FALSE(s["gpu"]["available"].get<bool>());
  EXPECT_EQ(s["gpu"]["reason"], "test machine without a GPU");
  EXPECT_FALSE(s["ready"].get<bool>());
  EXPECT_NE(s["reason"].get<std::string>().find("test machine without a GPU"), std::string::npos) << s["reason"];
  EXPECT_TRUE(s["devices"].empty());
  EXPECT_FALSE(s["topology"]["available"].get<bool>());
  EXPECT_NE(s["topology"]["reason"].get<std::string>().find("no GPU on this machine: test machine without a GPU"),
            std::string::npos);
  for (const char* p : {"high", "normal", "low"}) EXPECT_EQ(s["queue"]["depth"][p], 0) << p;
  EXPECT_EQ(s["queue"]["running"], 0);
  EXPECT_EQ(s["kernels"]["registered"], 0);
  EXPECT_EQ(s["cache"]["misses"], 0);
  EXPECT_TRUE(s["cache"]["hit_rate"].is_null()) << "no lookup yet: no rate";
  EXPECT_EQ(s["launches"]["latency_ms"]["samples"], 0);
  EXPECT_TRUE(s["failures"].empty()) << s["failures"];

  auto k = register_kernel({{"source", kNoop}});
  ASSERT_TRUE(k);
  ASSERT_EQ(k->status, 201) << k->body;
  const std::uint64_t kernel = body_of(k)["id"].get<std::uint64_t>();
  s = status();
  EXPECT_EQ(s["kernels"]["registered"], 1);
  EXPECT_EQ(s["cache"]["misses"], 1);
  EXPECT_EQ(s["cache"]["compiles"], 1);
  EXPECT_EQ(s["cache"]["hit_rate"], 0.0);
  auto again = register_kernel({{"source", kNoop}});
  ASSERT_TRUE(again);
  ASSERT_EQ(again->status, 201) << again->body;
  s = status();
  EXPECT_EQ(s["kernels"]["registered"], 2);
  EXPECT_EQ(s["cache"]["misses"], 1);
  EXPECT_GE(s["cache"]["memory_hits"].get<std::uint64_t>(), 1u);
  EXPECT_GT(s["cache"]["hit_rate"].get<double>(), 0.0);

  // The refused launch: among the last failures, with kiln's explanation and hint from the table.
  auto refused = launch_noop(kernel);
  ASSERT_TRUE(refused);
  ASSERT_EQ(refused->status, 503) << refused->body;
  const std::string request_id = refused->get_header_value("X-Request-Id");
  s = status();
  ASSERT_EQ(s["failures"].size(), 1u) << s["failures"];
  const json& f = s["failures"][0];
  EXPECT_EQ(f["source"], "refusal");
  EXPECT_EQ(f["tenant"], "alice");
  EXPECT_EQ(f["request_id"], request_id);
  EXPECT_EQ(f["error"], "KILN_ERROR_DRIVER_NOT_FOUND");
  EXPECT_NE(f["message"].get<std::string>().find("test machine without a GPU"), std::string::npos) << f;
  const ErrorInfo* info = find_error("KILN_ERROR_DRIVER_NOT_FOUND");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(f["explanation"], std::string(info->description));
  EXPECT_EQ(f["hint"], std::string(info->hint));
  EXPECT_TRUE(f["device"].is_null());
  EXPECT_TRUE(f["job"].is_null());
  EXPECT_TRUE(f["time"].is_string());
  expect_matches(status_schema(), s, "status");
  // Refused before it was queued: no launch job ended.
  EXPECT_EQ(s["launches"]["in_window"], 0);

  // A compile error: the registration's failure, newest first; a missing kernel is no failure.
  auto broken = register_kernel({{"source", R"(extern "C" __global__ void broken() { nonsense })"}});
  ASSERT_TRUE(broken);
  ASSERT_EQ(broken->status, 422) << broken->body;
  auto missing = launch_noop(999);
  ASSERT_TRUE(missing);
  ASSERT_EQ(missing->status, 404);
  s = status();
  ASSERT_EQ(s["failures"].size(), 2u) << s["failures"];
  EXPECT_EQ(s["failures"][0]["source"], "registration");
  EXPECT_EQ(s["failures"][0]["error"], "KILN_ERROR_COMPILE_FAILED");
  EXPECT_EQ(s["failures"][0]["request_id"], broken->get_header_value("X-Request-Id"));
  EXPECT_FALSE(s["failures"][0]["hint"].get<std::string>().empty());
  EXPECT_EQ(s["cache"]["compile_failures"], 1);

  // Another tenant sees the machine's numbers, never alice's failures.
  const json bob = status(kBobToken);
  EXPECT_EQ(bob["kernels"]["registered"], 2);
  EXPECT_TRUE(bob["failures"].empty()) << bob["failures"];

  // The picture of a machine without a GPU says why, as an SVG.
  auto svg = get("/v1/status/topology.svg");
  ASSERT_TRUE(svg);
  EXPECT_EQ(svg->status, 200);
  EXPECT_EQ(svg->get_header_value("Content-Type"), "image/svg+xml");
  EXPECT_EQ(svg->body.rfind("<svg ", 0), 0u) << svg->body;
  EXPECT_NE(svg->body.find("No topology to show"), std::string::npos) << svg->body;
  EXPECT_NE(svg->body.find("test machine without a GPU"), std::string::npos) << svg->body;
}

// The stand-in GPU outlives the server (TearDown stops it).
class StatusPageOnAGpu : public StatusPage {
 protected:
  void SetUp() override {
    StatusPage::SetUp();
    gpu_backend_ = &gpu_;
  }
  FakeGpu gpu_;
};

TEST_F(StatusPageOnAGpu, LaunchesShowRateLatencyAndDevices) {
  start();
  auto k = register_kernel({{"source", kNoop}});
  ASSERT_TRUE(k);
  ASSERT_EQ(k->status, 201) << k->body;
  const std::uint64_t kernel = body_of(k)["id"].get<std::uint64_t>();
  json s = status();
  EXPECT_TRUE(s["gpu"]["available"].get<bool>());
  EXPECT_EQ(s["gpu"]["reason"], "");
  ASSERT_EQ(s["devices"].size(), 1u);
  const json& d = s["devices"][0];
  EXPECT_EQ(d["name"], "fake GPU");
  EXPECT_EQ(d["memory_total"], std::uint64_t{1} << 30);
  EXPECT_EQ(d["memory_used"], 0);
  EXPECT_EQ(d["worker_up"], true);
  EXPECT_EQ(d["circuit_open"], false);
  EXPECT_EQ(d["worker_restarts"], 0);
  EXPECT_EQ(s["launches"]["total"]["completed"], 0);

  for (int i = 0; i < 3; ++i) {
    auto r = launch_noop(kernel);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
  }
  auto buffer = post("/v1/buffers", json{{"bytes", 4096}}.dump());
  ASSERT_TRUE(buffer);
  ASSERT_EQ(buffer->status, 201) << buffer->body;
  s = status();
  EXPECT_EQ(s["launches"]["total"]["completed"], 3);
  EXPECT_EQ(s["launches"]["in_window"], 3);
  EXPECT_EQ(s["launches"]["latency_ms"]["samples"], 3);
  EXPECT_GT(s["launches"]["per_second"].get<double>(), 0.0);
  const json& l = s["launches"]["latency_ms"];
  EXPECT_LE(l["p50"].get<double>(), l["p90"].get<double>());
  EXPECT_LE(l["p90"].get<double>(), l["p99"].get<double>());
  EXPECT_LE(l["p99"].get<double>(), l["max"].get<double>());
  EXPECT_EQ(s["devices"][0]["buffer_bytes"], 4096);
  EXPECT_TRUE(s["failures"].empty()) << s["failures"];
  expect_matches(status_schema(), s, "status");

  // A GPU worker's event reaches every tenant's list, explained from kiln's table.
  service::WorkerEvent started;
  started.kind = service::WorkerEvent::Kind::worker_started;
  server_->worker_event(started);
  service::WorkerEvent fault;
  fault.kind = service::WorkerEvent::Kind::sticky_fault;
  fault.device = 0;
  fault.job_id = 7;
  fault.request_id = "req-7";
  fault.error_name = "CUDA_ERROR_ILLEGAL_ADDRESS";
  fault.message = "the kernel read outside its buffers";
  server_->worker_event(fault);
  for (const char* token : {kAliceToken, kBobToken}) {
    s = status(token);
    ASSERT_EQ(s["failures"].size(), 1u) << s["failures"];
    const json& f = s["failures"][0];
    EXPECT_EQ(f["source"], "worker");
    EXPECT_TRUE(f["tenant"].is_null());
    EXPECT_EQ(f["device"], 0);
    EXPECT_EQ(f["job"], 7);
    EXPECT_EQ(f["request_id"], "req-7");
    EXPECT_EQ(f["error"], "CUDA_ERROR_ILLEGAL_ADDRESS");
    EXPECT_NE(f["message"].get<std::string>().find("the kernel read outside its buffers"), std::string::npos);
    EXPECT_EQ(f["explanation"], std::string(find_error("CUDA_ERROR_ILLEGAL_ADDRESS")->description));
    EXPECT_FALSE(f["hint"].get<std::string>().empty());
    expect_matches(status_schema(), s, "status");
  }
}

// With the machine's topology (here a recorded two-GPU machine), the picture is kiln's own SVG.
TEST(StatusTopology, ThePictureIsKilnsSvgOfTheMachine) {
  TempDir dir;
  service::ServiceConfig config;
  config.port = 0;
  config.cache_dir = dir.path() / "cache";
  config.http_threads = 2;
  config.drain_timeout = std::chrono::milliseconds(200);
  auto topology = std::make_shared<const topology::Topology>(
      topology::discover_fixture(std::string(KILN_SOURCE_DIR) + "/tests/topology/fixtures/h100-x2-vm", topology::CudaEnvironment{}));
  ASSERT_EQ(topology->gpus().size(), 2u);
  FakeGpu gpu;
  service::Server server(config, service::TokenStore::single("alice", kAliceToken), gpu, topology);
  server.start();
  httplib::Client client("127.0.0.1", server.port());
  const httplib::Headers auth = {{"Authorization", std::string("Bearer ") + kAliceToken}};
  auto svg = client.Get("/v1/status/topology.svg", auth);
  ASSERT_TRUE(svg);
  EXPECT_EQ(svg->status, 200);
  EXPECT_EQ(svg->body, topology::render_svg(*topology));
  auto s = client.Get("/v1/status", auth);
  ASSERT_TRUE(s);
  const json body = json::parse(s->body);
  EXPECT_TRUE(body["topology"]["available"].get<bool>());
  EXPECT_EQ(body["topology"]["reason"], "");
  server.stop();
}

TEST(RecentActivity, PercentilesRateAndWindow) {
  RecentActivity recent;
  const auto t0 = RecentActivity::Clock::now();
  EXPECT_EQ(recent.launches(t0).samples, 0u);
  EXPECT_EQ(recent.launches(t0).p99_ms, 0);
  for (int ms = 1; ms <= 100; ++ms) recent.launch_ended(ms / 1000.0, t0);
  service::LaunchWindow w = recent.launches(t0);
  EXPECT_EQ(w.samples, 100u);
  EXPECT_EQ(w.launches, 100u);
  EXPECT_NEAR(w.p50_ms, 50, 1e-3);
  EXPECT_NEAR(w.p90_ms, 90, 1e-3);
  EXPECT_NEAR(w.p99_ms, 99, 1e-3);
  EXPECT_NEAR(w.max_ms, 100, 1e-3);

  // 30 s later: still in the minute, no longer in the 10 s rate window.
  w = recent.launches(t0 + std::chrono::seconds(30));
  EXPECT_EQ(w.samples, 100u);
  EXPECT_EQ(w.launches, 100u);
  EXPECT_EQ(w.launches_per_second, 0);
  recent.launch_ended(0.5, t0 + std::chrono::seconds(30));
  w = recent.launches(t0 + std::chrono::seconds(30));
  EXPECT_NEAR(w.launches_per_second, 0.1, 1e-9) << "one launch over the last 10 s";
  EXPECT_NEAR(w.max_ms, 500, 1e-3);
  // Past the minute only the late one is left.
  w = recent.launches(t0 + std::chrono::seconds(75));
  EXPECT_EQ(w.samples, 1u);
  EXPECT_EQ(w.launches, 1u);
  EXPECT_NEAR(w.p50_ms, 500, 1e-3);
  w = recent.launches(t0 + std::chrono::seconds(200));
  EXPECT_EQ(w.samples, 0u);
  EXPECT_EQ(w.launches, 0u);
}

TEST(RecentActivity, SamplesAreBounded) {
  RecentActivity recent;
  const auto t0 = RecentActivity::Clock::now();
  for (std::size_t i = 0; i < RecentActivity::kMaxSamples + 100; ++i) recent.launch_ended(0.001, t0);
  const service::LaunchWindow w = recent.launches(t0);
  EXPECT_EQ(w.samples, RecentActivity::kMaxSamples);
  EXPECT_EQ(w.launches, RecentActivity::kMaxSamples + 100) << "the counts are exact; only the latencies are sampled";
}

TEST(RecentActivity, FailuresAreARingExplainedFromKilnsTable) {
  RecentActivity recent;
  for (std::size_t i = 0; i < RecentActivity::kMaxFailures + 5; ++i) {
    RecentFailure f;
    f.error = i % 2 ? "CUDA_ERROR_OUT_OF_MEMORY" : "not_a_known_code";
    f.message = "failure " + std::to_string(i);
    recent.failure(f);
  }
  const auto failures = recent.failures();
  ASSERT_EQ(failures.size(), RecentActivity::kMaxFailures);
  EXPECT_EQ(failures.front().message, "failure " + std::to_string(RecentActivity::kMaxFailures + 4)) << "newest first";
  EXPECT_EQ(failures.back().message, "failure 5");
  for (const RecentFailure& f : failures) {
    if (f.error == "CUDA_ERROR_OUT_OF_MEMORY") {
      EXPECT_EQ(f.explanation, std::string(find_error("CUDA_ERROR_OUT_OF_MEMORY")->description));
      EXPECT_EQ(f.hint, std::string(find_error("CUDA_ERROR_OUT_OF_MEMORY")->hint));
    } else {
      EXPECT_TRUE(f.explanation.empty());
      EXPECT_TRUE(f.hint.empty());
    }
  }
  // The service's own hint is kept; a long message is cut on a character boundary.
  RecentFailure own;
  own.error = "CUDA_ERROR_OUT_OF_MEMORY";
  own.hint = "free a buffer";
  own.message = std::string(RecentActivity::kMaxMessageBytes - 1, 'x') + "\xc3\xa9" + std::string(100, 'y');
  recent.failure(own);
  const RecentFailure got = recent.failures().front();
  EXPECT_EQ(got.hint, "free a buffer");
  EXPECT_LE(got.message.size(), RecentActivity::kMaxMessageBytes + 3);
  EXPECT_EQ(got.message, std::string(RecentActivity::kMaxMessageBytes - 1, 'x') + "…");
}

}  // namespace
}  // namespace kiln::testing
