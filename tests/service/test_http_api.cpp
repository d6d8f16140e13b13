// The HTTP API end to end over loopback, with the real NVRTC and a machine without a GPU.
#include <future>
#include <regex>
#include <thread>

#include "kiln/driver/error.hpp"

#include "support/compile_bomb.hpp"
#include "support/http_fixture.hpp"

namespace kiln::testing {
namespace {

using nlohmann::json;

constexpr const char* kSaxpy = R"(
extern "C" __global__ void saxpy(float a, const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
template <int N> __global__ void fill(int* out) { out[threadIdx.x] = N; }
)";

class HttpApi : public ServiceFixture {
 protected:
  void SetUp() override {
    ServiceFixture::SetUp();
    start();
  }
};

TEST_F(HttpApi, HealthzAnswersWithoutToken) {
  auto r = get("/healthz", nullptr);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(body_of(r)["status"], "ok");
}

TEST_F(HttpApi, ReadyzWithoutGpuIs503AndSaysWhy) {
  auto r = get("/readyz", nullptr);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  const json body = body_of(r);
  EXPECT_FALSE(body["ready"].get<bool>());
  EXPECT_TRUE(body["devices"].empty());
  EXPECT_NE(body["reason"].get<std::string>().find("no GPU on this machine: test machine without a GPU"), std::string::npos)
      << body.dump();
}

TEST_F(HttpApi, RegistersKernelAndReturnsLoweredNames) {
  auto r = register_kernel({{"source", kSaxpy}, {"name", "saxpy.cu"}, {"name_expressions", {"fill<3>"}}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 201) << r->body;
  const json body = body_of(r);
  EXPECT_GE(body["id"].get<std::uint64_t>(), 1u);
  EXPECT_EQ(body["name"], "saxpy.cu");
  EXPECT_EQ(body["lowered_names"]["fill<3>"], "_Z4fillILi3EEvPi");
  ASSERT_EQ(body["targets"].size(), 1u);
  EXPECT_EQ(body["targets"][0]["arch"], "sm_90");  // the fallback architecture without a GPU
  EXPECT_EQ(r->get_header_value("Location"), "/v1/kernels/" + std::to_string(body["id"].get<std::uint64_t>()));

  auto again = get("/v1/kernels/" + std::to_string(body["id"].get<std::uint64_t>()));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
  EXPECT_EQ(body_of(again)["lowered_names"]["fill<3>"], "_Z4fillILi3EEvPi");

  // The second registration of the same program is answered by the cache.
  auto cached = register_kernel({{"source", kSaxpy}, {"name", "saxpy.cu"}, {"name_expressions", {"fill<3>"}}});
  ASSERT_TRUE(cached);
  ASSERT_EQ(cached->status, 201);
  EXPECT_EQ(body_of(cached)["targets"][0]["origin"], "memory");
}

TEST_F(HttpApi, CompileErrorIs422WithLineNumbers) {
  auto r = register_kernel({{"source", "extern \"C\" __global__ void k(int* p) {\n  p[0] = 1\n  undefined_thing(p);\n}\n"},
                            {"name", "broken.cu"}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 422) << r->body;
  const json body = body_of(r);
  EXPECT_EQ(body["error"]["code"], "compile_failed");
  ASSERT_FALSE(body["error"]["diagnostics"].empty());
  const json& first = body["error"]["diagnostics"][0];
  EXPECT_EQ(first["file"], "broken.cu");
  EXPECT_EQ(first["line"], 3);
  EXPECT_EQ(first["severity"], "error");
  EXPECT_GT(first["column"].get<int>(), 0);
  EXPECT_NE(body["error"]["message"].get<std::string>().find("broken.cu:3:"), std::string::npos);
}

TEST_F(HttpApi, PolicyRefusalsAre422NamingTheRule) {
  struct Case {
    json request;
    std::string rule;
  };
  const Case cases[] = {
      {{{"source", "#include \"/etc/passwd\"\n__global__ void k() {}"}}, "include"},
      {{{"source", "__global__ void k() { asm(\"trap;\"); }"}}, "forbidden_identifier"},
      {{{"source", "__global__ void k() {}"}, {"include_dirs", {"/etc"}}}, "include_dirs"},
      {{{"source", "__global__ void k() {}"}, {"options", {{"extra", {"-I/etc"}}}}}, "extra_options"},
      {{{"source", std::string("__global__ void k() {}\n") + '\x01'}}, "control_characters"},
  };
  for (const Case& c : cases) {
    auto r = register_kernel(c.request);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 422) << c.rule << ": " << r->body;
    const json body = body_of(r);
    EXPECT_EQ(body["error"]["code"], "source_policy") << r->body;
    EXPECT_EQ(body["error"]["rule"], c.rule) << r->body;
  }
  // /etc/passwd never reaches the answer.
  auto r = register_kernel({{"source", "#include \"/etc/passwd\"\n__global__ void k() {}"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body.find("root:"), std::string::npos);
}

TEST_F(HttpApi, AuthIsRequiredOnTheApi) {
  auto none = post("/v1/kernels", json{{"source", kSaxpy}}.dump(), nullptr);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_NE(body_of(none)["error"]["message"].get<std::string>().find("Authorization"), std::string::npos);
  EXPECT_EQ(none->get_header_value("WWW-Authenticate").rfind("Bearer", 0), 0u);

  auto wrong = post("/v1/kernels", json{{"source", kSaxpy}}.dump(), "not-a-known-token-at-all");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  EXPECT_NE(body_of(wrong)["error"]["message"].get<std::string>().find("unknown bearer token"), std::string::npos);

  auto basic = client_->Get("/v1/jobs/1", {{"Authorization", "Basic YWxpY2U6cHc="}});
  ASSERT_TRUE(basic);
  EXPECT_EQ(basic->status, 401);
  EXPECT_NE(body_of(basic)["error"]["message"].get<std::string>().find("Bearer scheme"), std::string::npos);
}

TEST_F(HttpApi, TenantsSeeOnlyTheirOwnKernels) {
  auto r = register_kernel({{"source", kSaxpy}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 201);
  const std::string path = "/v1/kernels/" + std::to_string(body_of(r)["id"].get<std::uint64_t>());

  auto bob_get = get(path, kBobToken);
  ASSERT_TRUE(bob_get);
  EXPECT_EQ(bob_get->status, 404);
  auto bob_delete = del(path, kBobToken);
  ASSERT_TRUE(bob_delete);
  EXPECT_EQ(bob_delete->status, 404);
  auto bob_launch = post("/v1/launches", json{{"kernel", body_of(r)["id"]}, {"function", "saxpy"}}.dump(), kBobToken);
  ASSERT_TRUE(bob_launch);
  EXPECT_EQ(bob_launch->status, 404);

  // Still alice's, and alice can delete it; then it is gone for her too.
  auto alice_get = get(path);
  ASSERT_TRUE(alice_get);
  EXPECT_EQ(alice_get->status, 200);
  auto alice_delete = del(path);
  ASSERT_TRUE(alice_delete);
  EXPECT_EQ(alice_delete->status, 204);
  auto gone = get(path);
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->status, 404);
}

TEST_F(HttpApi, MalformedJsonIs400AndTheServerStaysUp) {
  for (const std::string body : {"{", "[1,2", "not json", "{\"source\": 12}", "[]", "{\"source\":\"x\",\"bogus\":1}"}) {
    auto r = post("/v1/kernels", body);
    ASSERT_TRUE(r) << body;
    EXPECT_EQ(r->status, 400) << body << " -> " << r->body;
    EXPECT_FALSE(body_of(r)["error"]["message"].get<std::string>().empty());
  }
  auto r = post("/v1/kernels", "{\"source\": 12}");
  EXPECT_EQ(body_of(r)["error"]["field"], "source");
  auto unknown = post("/v1/kernels", "{\"source\":\"x\",\"bogus\":1}");
  EXPECT_NE(body_of(unknown)["error"]["message"].get<std::string>().find("bogus: unknown field"), std::string::npos);
  auto health = get("/healthz", nullptr);
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST_F(HttpApi, UnknownRouteIs404Json) {
  auto r = get("/v1/nothing-here");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_NE(body_of(r)["error"]["message"].get<std::string>().find("/v1/nothing-here"), std::string::npos);
}

TEST_F(HttpApi, BuffersWithoutGpuAre503) {
  auto r = post("/v1/buffers", json{{"bytes", 1024}}.dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503) << r->body;
  const json body = body_of(r);
  EXPECT_EQ(body["error"]["code"], "no_gpu");
  EXPECT_NE(body["error"]["message"].get<std::string>().find("no GPU on this machine"), std::string::npos);
  // Buffers nobody created are simply absent.
  auto missing = get("/v1/buffers/7/data");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST_F(HttpApi, LaunchesWithoutGpuAre503) {
  auto k = register_kernel({{"source", kSaxpy}});
  ASSERT_TRUE(k);
  ASSERT_EQ(k->status, 201);
  const json launch = {{"kernel", body_of(k)["id"]}, {"function", "saxpy"}, {"grid", 4}, {"block", 256},
                       {"arguments", {{{"type", "f32"}, {"value", 2.0}}}}, {"wait", true}};
  auto r = post("/v1/launches", launch.dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_NE(body_of(r)["error"]["message"].get<std::string>().find("no GPU on this machine"), std::string::npos);
}

TEST_F(HttpApi, LaunchRequestErrorsNameTheField) {
  auto k = register_kernel({{"source", kSaxpy}, {"name_expressions", {"fill<3>"}}});
  ASSERT_TRUE(k);
  const json id = body_of(k)["id"];
  struct Case {
    json body;
    int status;
    std::string text;
  };
  const Case cases[] = {
      {{{"kernel", id}, {"function", "nope"}}, 400, "has no function 'nope'"},
      {{{"kernel", id}, {"function", "saxpy"}, {"block", {64, 32}}}, 400, "at most 1024 threads per block"},
      {{{"kernel", id}, {"function", "saxpy"}, {"grid", {0}}}, 400, "grid"},
      {{{"kernel", id}, {"function", "saxpy"}, {"priority", "urgent"}}, 400, "unknown priority 'urgent'"},
      {{{"kernel", id}, {"function", "saxpy"}, {"arguments", {{{"type", "f16"}, {"value", 1}}}}}, 400, "arguments[0].type"},
      {{{"kernel", id}, {"function", "saxpy"}, {"arguments", {{{"type", "i32"}, {"value", 1ll << 40}}}}}, 400, "does not fit in i32"},
      {{{"kernel", id}, {"function", "saxpy"}, {"arguments", {{{"buffer", 99}}}}}, 404, "buffer 99 not found"},
      {{{"kernel", id}, {"function", "saxpy"}, {"deadline_ms", 100000000}}, 400, "max_deadline_ms"},
      {{{"kernel", 4242}, {"function", "saxpy"}}, 404, "kernel 4242 not found"},
  };
  for (const Case& c : cases) {
    auto r = post("/v1/launches", c.body.dump());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, c.status) << c.body.dump() << " -> " << r->body;
    EXPECT_NE(r->body.find(c.text), std::string::npos) << c.body.dump() << " -> " << r->body;
  }
  // A name expression is a valid function name: it gets as far as placement (503: no GPU).
  auto by_expression = post("/v1/launches", json{{"kernel", id}, {"function", "fill<3>"}}.dump());
  ASSERT_TRUE(by_expression);
  EXPECT_EQ(by_expression->status, 503);
}

TEST_F(HttpApi, UnknownJobIs404AndBadQueryIs400) {
  auto r = get("/v1/jobs/12345?wait_ms=10");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  auto bad = get("/v1/jobs/1?wait_ms=soon");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(body_of(bad)["error"]["message"].get<std::string>().find("wait_ms"), std::string::npos);
}

TEST_F(HttpApi, MetricsAreValidPrometheusText) {
  ASSERT_EQ(register_kernel({{"source", kSaxpy}})->status, 201);
  ASSERT_EQ(register_kernel({{"source", kSaxpy}})->status, 201);  // a cache hit
  auto r = get("/metrics", nullptr);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0), 0u);
  const std::regex sample(R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*\})? -?[0-9.e+Inf-]+$)");
  const std::regex meta(R"(^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$)");
  std::istringstream lines(r->body);
  std::string line;
  std::map<std::string, double> values;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    if (line[0] == '#') {
      EXPECT_TRUE(std::regex_match(line, meta)) << line;
      continue;
    }
    EXPECT_TRUE(std::regex_match(line, sample)) << line;
    const auto space = line.rfind(' ');
    values[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  for (const char* name : {"kiln_queue_depth{priority=\"high\"}", "kiln_queue_depth{priority=\"normal\"}",
                           "kiln_queue_depth{priority=\"low\"}", "kiln_launches_total{status=\"completed\"}",
                           "kiln_launch_duration_seconds_bucket{le=\"+Inf\"}", "kiln_launch_duration_seconds_count",
                           "kiln_compile_cache_hits_total{tier=\"memory\"}", "kiln_compile_cache_misses_total",
                           "kiln_gpus", "kiln_ready", "kiln_kernels"})
    EXPECT_TRUE(values.count(name)) << name << " missing from\n" << r->body;
  EXPECT_EQ(values["kiln_compile_cache_hits_total{tier=\"memory\"}"], 1);
  EXPECT_EQ(values["kiln_compile_cache_misses_total"], 1);
  EXPECT_EQ(values["kiln_kernels"], 2);
  EXPECT_EQ(values["kiln_gpus"], 0);
  EXPECT_EQ(values["kiln_ready"], 0);
  // httplib counts an answer after sending it: the two 201s show up within moments, not at once.
  bool counted = false;
  for (int i = 0; i < 100 && !counted; ++i) {
    auto again = get("/metrics", nullptr);
    ASSERT_TRUE(again);
    counted = again->body.find("kiln_http_responses_total{code=\"201\"} 2\n") != std::string::npos;
    if (!counted) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(counted) << "kiln_http_responses_total{code=\"201\"} never reached 2";
}

class HttpLimits : public ServiceFixture {
 protected:
  void SetUp() override {
    ServiceFixture::SetUp();
    config_.max_body_bytes = 64 * 1024;
    config_.max_json_bytes = 8 * 1024;
    config_.max_kernels_per_tenant = 2;
    config_.max_buffer_bytes = 1 << 20;
    config_.source_policy.max_source_bytes = 4096;
    start();
  }
};

TEST_F(HttpLimits, OversizedBodiesAre413AndTheServerStaysUp) {
  auto huge = post("/v1/kernels", std::string(100 * 1024, ' '));  // over max_body_bytes: httplib refuses it
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->status, 413);
  EXPECT_NE(body_of(huge)["error"]["message"].get<std::string>().find("max_body_bytes"), std::string::npos);

  auto big_json = post("/v1/kernels", json{{"source", std::string(10 * 1024, 'x')}}.dump());  // over max_json_bytes
  ASSERT_TRUE(big_json);
  EXPECT_EQ(big_json->status, 413);
  EXPECT_NE(body_of(big_json)["error"]["message"].get<std::string>().find("max_json_bytes"), std::string::npos);

  auto big_source = post("/v1/kernels", json{{"source", "__global__ void k() {}\n//" + std::string(5000, 'x')}}.dump());
  ASSERT_TRUE(big_source);
  EXPECT_EQ(big_source->status, 422);
  EXPECT_EQ(body_of(big_source)["error"]["rule"], "max_source_bytes");

  auto big_buffer = post("/v1/buffers", json{{"bytes", 2 << 20}}.dump());
  ASSERT_TRUE(big_buffer);
  EXPECT_EQ(big_buffer->status, 413);
  EXPECT_NE(body_of(big_buffer)["error"]["message"].get<std::string>().find("max_buffer_bytes"), std::string::npos);

  auto health = get("/healthz", nullptr);
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST_F(HttpLimits, KernelsPerTenantAreCapped) {
  for (int i = 0; i < 2; ++i) {
    auto r = register_kernel({{"source", "__global__ void k" + std::to_string(i) + "() {}"}});
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 201) << r->body;
  }
  auto third = register_kernel({{"source", "__global__ void k3() {}"}});
  ASSERT_TRUE(third);
  EXPECT_EQ(third->status, 429);
  EXPECT_NE(body_of(third)["error"]["message"].get<std::string>().find("max_kernels_per_tenant"), std::string::npos);
  // Another tenant has its own allowance.
  auto bob = register_kernel({{"source", "__global__ void k3() {}"}}, kBobToken);
  ASSERT_TRUE(bob);
  EXPECT_EQ(bob->status, 201);
}

TEST_F(HttpApi, StopIsGracefulAndRefusesLaterRequests) {
  // Concurrent clients while the server stops: each gets an answer or a closed connection, never a hang.
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i)
    clients.emplace_back([port = server_->port()] {
      httplib::Client c("127.0.0.1", port);
      for (int j = 0; j < 20; ++j) (void)c.Get("/healthz");
    });
  server_->stop();
  for (auto& t : clients) t.join();
  httplib::Client after("127.0.0.1", server_->port());
  after.set_connection_timeout(std::chrono::seconds(1));
  auto r = after.Get("/healthz");
  EXPECT_FALSE(r) << "the listener should be closed";
}

TEST(ServerConfig, BindFailureNamesTheAddress) {
  service::ServiceConfig config;
  config.listen_address = "203.0.113.7";  // TEST-NET-3: not an address of this machine
  config.port = 0;
  service::NoGpuBackend backend("none");
  service::Server server(config, service::TokenStore::single("t", "0123456789abcdef0123"), backend);
  try {
    server.start();
    FAIL() << "start() should fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("203.0.113.7"), std::string::npos) << e.what();
  }
}

// A kept-alive connection must not wait on Nagle's algorithm: a response written in two pieces
// (headers, body) would sit ~40 ms behind the client's delayed ACK on every request.
TEST_F(HttpApi, KeptAliveConnectionsAnswerWithoutNagleDelay) {
  start();
  httplib::Client client("127.0.0.1", server_->port());
  client.set_keep_alive(true);
  client.set_tcp_nodelay(true);
  std::vector<double> ms;
  for (int i = 0; i < 21; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = client.Get("/v1/jobs/1", auth(kAliceToken));
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 404);
  }
  // With Nagle's algorithm every request waits for the delayed ACK (~40 ms); without it, the
  // fastest of 21 is well under a millisecond even on a loaded machine.
  std::sort(ms.begin(), ms.end());
  EXPECT_LT(ms[0], 20.0) << "the fastest request on a kept-alive connection took " << ms[0] << " ms";
}

// The source policy's compile-time limit holds: a compile past it is killed with its worker
// process and the registration refused naming the rule; the next one (quick, under the same limit)
// works in a new worker. The limit counts the compile alone: a new worker has loaded NVRTC and run
// one compile before it reports ready.
TEST_F(HttpApi, CompileTimeLimitEndsALongCompile) {
  config_.compile_workers = 1;
  config_.source_policy.max_compile_time = std::chrono::seconds(3);
  start();
  auto slow = register_kernel({{"source", compile_bomb()}});
  ASSERT_TRUE(slow);
  EXPECT_EQ(slow->status, 422) << slow->body;
  auto error = body_of(slow)["error"];
  EXPECT_EQ(error["code"], "source_policy") << error.dump();
  EXPECT_EQ(error["rule"], "max_compile_time") << error.dump();

  auto quick = register_kernel({{"source", "__global__ void k(int* p) { *p = 1; }"}});
  ASSERT_TRUE(quick);
  EXPECT_EQ(quick->status, 201) << quick->body;
}

// The defaults are the safe configuration: compile workers, a compile-time limit and a memory limit.
TEST(ServiceConfig, DefaultsLimitEveryCompile) {
  service::ServiceConfig c;
  EXPECT_GE(c.compile_workers, 2u);
  EXPECT_EQ(c.source_policy.max_compile_time, std::chrono::seconds(60));
  EXPECT_EQ(c.source_policy.max_compile_memory, 4ull << 30);
  EXPECT_NO_THROW(service::validate(c));
  EXPECT_GE(service::compiles_per_tenant(c), 1u);
  EXPECT_LT(service::compiles_per_tenant(c), c.compile_workers) << "one tenant must not fill every compile slot";
  service::apply_config_json(c, R"({"compile_workers": 0})", "test");
  EXPECT_THROW(service::validate(c), Error) << "limits that cannot be enforced in-process";
  service::apply_config_json(c, R"({"source_policy": {"max_compile_time_ms": 0}})", "test");
  try {
    service::validate(c);
    ADD_FAILURE() << "accepted a memory limit without compile workers";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_compile_memory_bytes needs compile_workers > 0"), std::string::npos)
        << e.what();
  }
  service::apply_config_json(c, R"({"source_policy": {"max_compile_time_ms": 0, "max_compile_memory_bytes": 0}})", "test");
  EXPECT_NO_THROW(service::validate(c));
}

// One tenant's flood of compile bombs neither delays another tenant's registration nor holds every
// HTTP thread: it runs its per-tenant share of the compile workers, queues a few more behind its
// own work, and the rest are refused at once (429).
TEST_F(HttpApi, ATenantsCompileFloodWaitsBehindItsOwnWork) {
  config_.compile_workers = 2;
  config_.max_compiles_per_tenant = 1;
  config_.max_queued_compiles_per_tenant = 1;
  config_.http_threads = 8;
  config_.source_policy.max_compile_time = std::chrono::seconds(3);
  start();
  const int port = server_->port();
  auto bomb_from_alice = [&] {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(std::chrono::seconds(120));
    return c.Post("/v1/kernels", auth(kAliceToken), nlohmann::json{{"source", compile_bomb()}}.dump(), "application/json");
  };
  // The service's own gauges say when a registration is compiling or waiting.
  auto compiles = [&](const char* state) {
    auto m = get("/metrics", nullptr);
    const std::string key = std::string("kiln_compiles{state=\"") + state + "\"} ";
    const auto at = m ? m->body.find(key) : std::string::npos;
    return at == std::string::npos ? -1 : std::stoi(m->body.substr(at + key.size()));
  };
  auto until = [&](const char* state, int n) {
    for (int i = 0; i < 6000 && compiles(state) != n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return compiles(state) == n;
  };
  // Alice: one bomb compiling, one waiting behind it, a third refused.
  auto first = std::async(std::launch::async, bomb_from_alice);
  ASSERT_TRUE(until("running", 1));
  auto second = std::async(std::launch::async, bomb_from_alice);
  ASSERT_TRUE(until("waiting", 1));
  auto third = bomb_from_alice();
  ASSERT_TRUE(third);
  ASSERT_EQ(third->status, 429) << third->body;
  EXPECT_EQ(body_of(third)["error"]["code"], "too_many_compiles");
  // Bob registers while alice's bombs hold their slot and queue: he gets the free slot at once.
  auto bob = register_kernel({{"source", "__global__ void k(int* p) { *p = 2; }"}}, kBobToken);
  ASSERT_TRUE(bob);
  EXPECT_EQ(bob->status, 201) << bob->body;
  EXPECT_EQ(second.wait_for(std::chrono::seconds(0)), std::future_status::timeout)
      << "bob's registration waited until alice's queued bomb had been compiled";
  for (auto* f : {&first, &second}) {
    auto r = f->get();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 422) << r->body;
  }
}

TEST(ServiceConfig, CompileTimeLimitNeedsCompileWorkers) {
  service::ServiceConfig c;
  c.compile_workers = 0;
  c.source_policy.max_compile_memory = 0;
  c.source_policy.max_compile_time = std::chrono::milliseconds(1000);
  try {
    service::validate(c);
    FAIL() << "accepted a compile-time limit it cannot enforce";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("compile_workers"), std::string::npos) << e.what();
  }
  c.compile_workers = 2;
  EXPECT_NO_THROW(service::validate(c));
  service::apply_config_json(c, R"({"compile_workers": 3, "source_policy": {"max_compile_time_ms": 5000}})", "test");
  EXPECT_EQ(c.compile_workers, 3u);
  EXPECT_EQ(c.source_policy.max_compile_time, std::chrono::milliseconds(5000));
}

// 64 clients connecting at the same moment all get their answer: cpp-httplib's own listen backlog
// (5) dropped some of them (their first request failed with a read error).
TEST_F(HttpApi, SixtyFourClientsConnectingAtOnceAreAllServed) {
  config_.http_threads = 72;
  start();
  for (int round = 0; round < 3; ++round) {
    std::atomic<int> ready{0}, failed{0};
    std::vector<std::thread> clients;
    for (int i = 0; i < 64; ++i)
      clients.emplace_back([&] {
        httplib::Client client("127.0.0.1", server_->port());
        client.set_keep_alive(true);
        ++ready;
        while (ready.load() < 64) std::this_thread::yield();
        auto r = client.Get("/v1/jobs/1", auth(kAliceToken));
        if (!r || r->status != 404) ++failed;
      });
    for (auto& t : clients) t.join();
    EXPECT_EQ(failed.load(), 0) << "round " << round;
  }
}

}  // namespace
}  // namespace kiln::testing
