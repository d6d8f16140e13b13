// kilnd's structured logs and request ids over loopback HTTP: each request logged once with its
// id, the events a CPU machine can provoke (refusals, compile failures, shutdown phases), the id's
// round trip (answer header, log line, job record), and no token, source or buffer bytes in any
// line. The lines are captured through the Log facade and parsed as JSON; one test runs the real
// kilnd with --log-format json and reads its standard error.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "detail/log_budget.hpp"
#include "http/request_id.hpp"
#include "jit/kernels.hpp"
#include "kiln/service/log.hpp"
#include "kiln/service/worker_event_log.hpp"
#include "support/child.hpp"
#include "support/fake_gpu.hpp"
#include "support/http_fixture.hpp"
#include "support/log_capture.hpp"
#include "support/process.hpp"
#include "support/raw_http.hpp"

namespace kiln::testing {
namespace {

using nlohmann::json;
using service::Log;
using service::LogFormat;
using service::LogLevel;

using jit::test_kernels::kSaxpy;

class KilndLogs : public ServiceFixture {
 protected:
  void SetUp() override {
    ServiceFixture::SetUp();
    gpu_backend_ = &gpu_;
    log_ = capture_.make(LogFormat::json);
  }

  httplib::Result post_with_id(const std::string& path, const json& body, const std::string& id, const char* token = kAliceToken) {
    httplib::Headers h = auth(token);
    h.emplace("X-Request-Id", id);
    return client_->Post(path, h, body.dump(), "application/json");
  }

  FakeGpu gpu_;
  LogCapture capture_;
};

TEST(RequestId, ClientIdsAreKeptWhenFairElseMade) {
  using service::http::request_id_for;
  using service::http::valid_request_id;
  EXPECT_TRUE(valid_request_id("trace-42.a_b~c"));
  EXPECT_TRUE(valid_request_id(std::string(128, 'x')));
  EXPECT_FALSE(valid_request_id(std::string(129, 'x')));
  EXPECT_FALSE(valid_request_id(""));
  EXPECT_FALSE(valid_request_id("has space"));
  EXPECT_FALSE(valid_request_id("quote\"d"));
  EXPECT_FALSE(valid_request_id("new\nline"));
  EXPECT_FALSE(valid_request_id("{json}"));
  EXPECT_EQ(request_id_for("mine-1"), "mine-1");
  const std::string made = request_id_for("not valid");
  EXPECT_TRUE(valid_request_id(made)) << made;
  EXPECT_NE(made, request_id_for("not valid")) << "each made id is new";
}

TEST_F(KilndLogs, EachRequestIsLoggedOnceWithItsIdInTheAnswer) {
  start();
  auto r = client_->Get("/healthz");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  const std::string id = r->get_header_value("X-Request-Id");
  ASSERT_TRUE(service::http::valid_request_id(id)) << "'" << id << "'";
  const std::vector<json> lines = capture_.requests(id);
  ASSERT_EQ(lines.size(), 1u) << capture_.all();
  const json& line = lines[0];
  EXPECT_EQ(line["level"], "info");
  EXPECT_EQ(line["method"], "GET");
  EXPECT_EQ(line["route"], "/healthz");
  EXPECT_EQ(line["status"], 200);
  EXPECT_EQ(line["bytes_out"], r->body.size());
  EXPECT_EQ(line["bytes_in"], 0);
  EXPECT_TRUE(line["duration_ms"].is_number());
  EXPECT_EQ(line["client"], "127.0.0.1");
  EXPECT_TRUE(line["time"].is_string());

  // A route with an id is logged as its template, with the tenant.
  auto k = get("/v1/kernels/77");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->status, 404);
  const auto kl = capture_.requests(k->get_header_value("X-Request-Id"));
  ASSERT_EQ(kl.size(), 1u) << capture_.all();
  EXPECT_EQ(kl[0]["route"], "/v1/kernels/{id}");
  EXPECT_EQ(kl[0]["tenant"], "alice");
  EXPECT_EQ(kl[0]["status"], 404);
}

TEST_F(KilndLogs, ClientIdsComeBackAndBadOnesAreReplaced) {
  start();
  auto kept = client_->Get("/healthz", {{"X-Request-Id", "trace-0001"}});
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->get_header_value("X-Request-Id"), "trace-0001");
  EXPECT_EQ(capture_.requests("trace-0001").size(), 1u) << capture_.all();

  for (const std::string& bad : {std::string("two words"), std::string(200, 'a'), std::string("<script>")}) {
    auto r = client_->Get("/healthz", {{"X-Request-Id", bad}});
    ASSERT_TRUE(r);
    const std::string id = r->get_header_value("X-Request-Id");
    EXPECT_NE(id, bad);
    EXPECT_TRUE(service::http::valid_request_id(id)) << id;
    EXPECT_EQ(capture_.requests(id).size(), 1u) << capture_.all();
  }
}

// A flood of bad tokens costs a few auth_refused lines, not one each, and loses nothing from the
// count: the lines written plus the `suppressed` counts they carry are the refusals made (however
// fast or slow this machine sends them).
TEST_F(KilndLogs, RefusedTokensAreLoggedWithinABudgetThatCountsTheRest) {
  start();
  constexpr int kRefusals = 200;
  for (int i = 0; i < kRefusals; ++i) {
    auto r = client_->Get("/v1/kernels", {{"Authorization", "Bearer not-a-token-" + std::to_string(i)}});
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 401);
  }
  // The last ones may still be counted, owed to the next line written: one more refusal after a
  // second's pause is written, with them.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  ASSERT_EQ(client_->Get("/v1/kernels", {{"Authorization", "Bearer not-a-token-last"}})->status, 401);
  const auto lines = capture_.events("auth_refused");
  std::uint64_t accounted = 0;
  for (const auto& line : lines) accounted += 1 + line.value("suppressed", std::uint64_t{0});
  EXPECT_EQ(accounted, kRefusals + 1u) << lines.size() << " lines";
  EXPECT_LT(lines.size(), static_cast<std::size_t>(kRefusals)) << "every refusal got its own line";
  EXPECT_EQ(capture_.events("request").size() >= kRefusals + 1u, true) << "each request still has its request line";
}

// Log::reopen: lines after it go to a new file of the same name; when that cannot be opened it
// throws naming the file and the log goes on writing to the file it has.
TEST(LogReopen, OpensTheFileAgainOrKeepsTheOldOneSayingWhy) {
  TempDir dir;
  const auto folder = dir.path() / "logs";
  std::filesystem::create_directory(folder);
  const auto file = folder / "kilnd.log", moved = dir.path() / "moved.log";
  const Log log = Log::open({LogFormat::text, LogLevel::info, file});
  auto read = [](const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  log.info("first", "before the move");
  std::filesystem::rename(file, moved);
  log.reopen();
  log.info("second", "after the reopen");
  EXPECT_NE(read(moved).find("first: before the move"), std::string::npos) << read(moved);
  EXPECT_NE(read(file).find("second: after the reopen"), std::string::npos) << read(file);

  std::filesystem::rename(file, dir.path() / "moved-again.log");
  std::filesystem::remove_all(folder);
  std::ofstream(folder) << "a file where the folder was";  // nowhere to open the file again
  try {
    log.reopen();
    ADD_FAILURE() << "reopen() into a removed folder did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot open the log file " + file.string()), std::string::npos) << e.what();
  }
  log.info("third", "to the file it had");
  EXPECT_NE(read(dir.path() / "moved-again.log").find("third: to the file it had"), std::string::npos);
}

TEST(LogBudget, AllowsItsLinesASecondAndCountsTheRestIntoTheNext) {
  service::detail::LogBudget budget(3);
  const auto t0 = service::detail::LogBudget::Clock::time_point{} + std::chrono::hours(1);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(budget.take(t0), std::optional<std::uint64_t>(0));
  EXPECT_FALSE(budget.take(t0 + std::chrono::milliseconds(500)));
  EXPECT_FALSE(budget.take(t0 + std::chrono::milliseconds(999)));
  EXPECT_EQ(budget.take(t0 + std::chrono::milliseconds(1000)), std::optional<std::uint64_t>(2));  // a new second
  EXPECT_EQ(budget.take(t0 + std::chrono::milliseconds(1001)), std::optional<std::uint64_t>(0));
}

TEST_F(KilndLogs, ErrorsCarryTheRequestIdTransportRefusalsToo) {
  start();
  auto missing = client_->Get("/no/such/route", {{"X-Request-Id", "e-404"}});
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(missing->get_header_value("X-Request-Id"), "e-404");

  auto unauthorized = client_->Get("/v1/kernels", {{"X-Request-Id", "e-401"}, {"Authorization", "Bearer wrong-token-4242"}});
  ASSERT_TRUE(unauthorized);
  EXPECT_EQ(unauthorized->status, 401);
  EXPECT_EQ(unauthorized->get_header_value("X-Request-Id"), "e-401");
  const auto refusals = capture_.events("auth_refused");
  ASSERT_EQ(refusals.size(), 1u) << capture_.all();
  EXPECT_EQ(refusals[0]["request_id"], "e-401");
  EXPECT_EQ(refusals[0]["level"], "warn");
  EXPECT_EQ(capture_.all().find("wrong-token-4242"), std::string::npos) << capture_.all();

  auto bad_json = post_with_id("/v1/buffers", json("not an object"), "e-400");
  ASSERT_TRUE(bad_json);
  EXPECT_EQ(bad_json->status, 400);
  EXPECT_EQ(bad_json->get_header_value("X-Request-Id"), "e-400");

  // Refused by the transport before any route: a head past max_header_bytes (431), a malformed
  // request line (400).
  {
    RawConnection c(server_->port());
    ASSERT_TRUE(c.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: e-431\r\nX-Big: " + std::string(20000, 'b') + "\r\n\r\n"));
    auto answer = c.read_response();
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->status, 431);
    const std::string id = answer->header("X-Request-Id");
    EXPECT_TRUE(service::http::valid_request_id(id)) << answer->head;  // made: the head was never parsed
    EXPECT_EQ(capture_.requests(id).size(), 1u) << capture_.all();
  }
  {
    RawConnection c(server_->port());
    // A request line Beast refuses: the id is read from the raw headers.
    ASSERT_TRUE(c.send("GET /healthz HTTP/2.0\r\nHost: x\r\nX-Request-Id: e-malformed\r\n\r\n"));
    auto answer = c.read_response();
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->status, 400);
    EXPECT_EQ(answer->header("X-Request-Id"), "e-malformed") << answer->head;
    const auto lines = capture_.requests("e-malformed");
    ASSERT_EQ(lines.size(), 1u) << capture_.all();
    EXPECT_EQ(lines[0]["status"], 400);
  }
  for (const char* id : {"e-404", "e-401", "e-400"}) EXPECT_EQ(capture_.requests(id).size(), 1u) << id << "\n" << capture_.all();
}

TEST_F(KilndLogs, TheRequestIdFollowsALaunchIntoItsJobRecord) {
  start();
  auto kernel = register_kernel({{"source", kSaxpy}});
  ASSERT_TRUE(kernel);
  ASSERT_EQ(kernel->status, 201) << kernel->body;
  auto buffer = post("/v1/buffers", json({{"bytes", 64}}).dump());
  ASSERT_TRUE(buffer);
  ASSERT_EQ(buffer->status, 201) << buffer->body;
  const json launch = {{"kernel", body_of(kernel)["id"]},
                       {"function", "saxpy"},
                       {"wait", true},
                       {"arguments",
                        {{{"type", "f32"}, {"value", 2.0}},
                         {{"buffer", body_of(buffer)["id"]}},
                         {{"buffer", body_of(buffer)["id"]}},
                         {{"type", "i32"}, {"value", 16}}}}};

  // Given by the client.
  auto given = post_with_id("/v1/launches", launch, "launch-from-client-7");
  ASSERT_TRUE(given);
  ASSERT_EQ(given->status, 200) << given->body;
  EXPECT_EQ(given->get_header_value("X-Request-Id"), "launch-from-client-7");
  EXPECT_EQ(body_of(given)["request_id"], "launch-from-client-7");
  const auto job = body_of(given)["id"].get<std::uint64_t>();
  auto record = get("/v1/jobs/" + std::to_string(job));
  ASSERT_TRUE(record);
  EXPECT_EQ(body_of(record)["request_id"], "launch-from-client-7") << record->body;
  // The job record's request id is the launch's, not the id of the request reading it.
  EXPECT_NE(record->get_header_value("X-Request-Id"), "launch-from-client-7");
  const auto line = capture_.requests("launch-from-client-7");
  ASSERT_EQ(line.size(), 1u) << capture_.all();
  EXPECT_EQ(line[0]["route"], "/v1/launches");
  EXPECT_EQ(line[0]["tenant"], "alice");
  EXPECT_EQ(line[0]["status"], 200);
  EXPECT_EQ(line[0]["bytes_in"], launch.dump().size());

  // Made by kilnd.
  auto made = post("/v1/launches", launch.dump());
  ASSERT_TRUE(made);
  ASSERT_EQ(made->status, 200) << made->body;
  const std::string id = made->get_header_value("X-Request-Id");
  ASSERT_TRUE(service::http::valid_request_id(id));
  EXPECT_EQ(body_of(made)["request_id"], id);
  auto listed = get("/v1/jobs");
  ASSERT_TRUE(listed);
  EXPECT_EQ(body_of(listed)["jobs"][1]["request_id"], id) << listed->body;
  EXPECT_EQ(capture_.requests(id).size(), 1u);
}

TEST_F(KilndLogs, PolicyRefusalAndCompileFailureAreLoggedWithTheirRequest) {
  start();
  auto refused = post_with_id("/v1/kernels", {{"source", "__global__ void k() { asm(\"trap;\"); }"}}, "policy-1");
  ASSERT_TRUE(refused);
  ASSERT_EQ(refused->status, 422) << refused->body;
  const auto policy = capture_.events("policy_refused");
  ASSERT_EQ(policy.size(), 1u) << capture_.all();
  EXPECT_EQ(policy[0]["rule"], "forbidden_identifier");
  EXPECT_EQ(policy[0]["request_id"], "policy-1");
  EXPECT_EQ(policy[0]["tenant"], "alice");
  EXPECT_EQ(policy[0]["level"], "warn");

  auto broken = post_with_id("/v1/kernels", {{"source", "__global__ void k() { undefined_thing(); }"}}, "compile-1");
  ASSERT_TRUE(broken);
  ASSERT_EQ(broken->status, 422) << broken->body;
  const auto failed = capture_.events("compile_failed");
  ASSERT_EQ(failed.size(), 1u) << capture_.all();
  EXPECT_EQ(failed[0]["request_id"], "compile-1");
  EXPECT_GE(failed[0]["diagnostics"].get<int>(), 1);
  EXPECT_EQ(capture_.requests("compile-1").at(0)["status"], 422);
}

TEST_F(KilndLogs, AnOutOfMemoryRefusalIsLoggedWithTheMemoryPicture) {
  start();
  // The stand-in GPU has 1 GiB: 2 GiB passes max_buffer_bytes and is refused at admission.
  auto r = post_with_id("/v1/buffers", {{"bytes", std::uint64_t{2} << 30}}, "oom-1");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 507) << r->body;
  const auto oom = capture_.events("oom_refused");
  ASSERT_EQ(oom.size(), 1u) << capture_.all();
  EXPECT_EQ(oom[0]["level"], "warn");
  EXPECT_EQ(oom[0]["request_id"], "oom-1");
  EXPECT_EQ(oom[0]["requested"], std::uint64_t{2} << 30);
  EXPECT_EQ(oom[0]["total"], std::uint64_t{1} << 30);
  EXPECT_EQ(capture_.requests("oom-1").at(0)["status"], 507);
}

TEST_F(KilndLogs, NoTokenNoSourceNoBufferBytesInAnyLine) {
  constexpr const char* kSourceMarker = "kilnSourceMarker9f4e";
  constexpr const char* kBytesMarker = "KILN-BUFFER-BYTES-MARKER-5d21";
  start();
  const std::string source = std::string("// ") + kSourceMarker + "\nextern \"C\" __global__ void " + kSourceMarker +
                             "(int* p) { p[0] = 1; }\n";
  auto ok = register_kernel({{"source", source}});
  ASSERT_TRUE(ok);
  ASSERT_EQ(ok->status, 201) << ok->body;
  // A compile failure and a policy refusal quote the source in their answers: never in the log.
  auto broken = register_kernel({{"source", source + "void x() { " + kSourceMarker + "_undefined(); }\n"}});
  ASSERT_TRUE(broken);
  EXPECT_EQ(broken->status, 422);
  auto refused = register_kernel({{"source", source + "__device__ void y() { asm(\"" + kSourceMarker + "\"); }\n"}});
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 422);

  auto buffer = post("/v1/buffers", json({{"bytes", 64}}).dump());
  ASSERT_TRUE(buffer);
  ASSERT_EQ(buffer->status, 201);
  const std::string path = "/v1/buffers/" + std::to_string(body_of(buffer)["id"].get<std::uint64_t>()) + "/data";
  auto put = client_->Put(path, auth(kAliceToken), kBytesMarker, "application/octet-stream");
  ASSERT_TRUE(put);
  ASSERT_EQ(put->status, 200) << put->body;
  auto read = client_->Get(path + "?bytes=" + std::to_string(std::string_view(kBytesMarker).size()), auth(kAliceToken));
  ASSERT_TRUE(read);
  EXPECT_EQ(read->body, kBytesMarker);
  auto stranger = client_->Get("/v1/buffers", {{"Authorization", std::string("Bearer ") + kBobToken + "x"}});
  ASSERT_TRUE(stranger);
  EXPECT_EQ(stranger->status, 401);
  server_->stop();

  const std::string log = capture_.all();
  ASSERT_GE(capture_.events("request").size(), 6u) << log;
  for (const std::string& secret :
       {std::string(kAliceToken), std::string(kBobToken), std::string(kSourceMarker), std::string(kBytesMarker)})
    EXPECT_EQ(log.find(secret), std::string::npos) << "'" << secret << "' is in the log:\n" << log;
}

TEST_F(KilndLogs, ShutdownPhasesAreLoggedInOrder) {
  start();
  server_->stop();
  std::vector<std::string> phases;
  for (const json& e : capture_.events("shutdown")) phases.push_back(e["phase"].get<std::string>());
  EXPECT_EQ(phases, (std::vector<std::string>{"drain", "transport", "release", "stopped"})) << capture_.all();
  EXPECT_EQ(capture_.events("listening").size(), 1u);
}

TEST_F(KilndLogs, TextLinesAndLevels) {
  log_ = capture_.make(LogFormat::text, LogLevel::info);
  start();
  auto r = client_->Get("/healthz", {{"X-Request-Id", "text-1"}});
  ASSERT_TRUE(r);
  bool found = false;
  for (const std::string& line : capture_.lines())
    if (line.find("request_id=text-1") != std::string::npos) {
      found = true;
      EXPECT_TRUE(std::regex_search(line, std::regex(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO request: GET /healthz 200 )")))
          << line;
      EXPECT_NE(line.find(" status=200"), std::string::npos) << line;
    }
  EXPECT_TRUE(found) << capture_.all();

  // At warn, a 200 is not logged, a refusal is.
  const std::size_t before = capture_.lines().size();
  Log quiet = capture_.make(LogFormat::json, LogLevel::warn);
  EXPECT_FALSE(quiet.enabled(LogLevel::info));
  EXPECT_TRUE(quiet.enabled(LogLevel::error));
  quiet.info("x", "not written");
  quiet.warn("y", "written", {{"n", 1}});
  ASSERT_EQ(capture_.lines().size(), before + 1);
  const json y = json::parse(capture_.lines().back());
  EXPECT_EQ(y["event"], "y");
  EXPECT_EQ(y["n"], 1);
}

// Whatever a field holds (quotes, control characters, bytes that are not UTF-8, a path as sent),
// a JSON line parses, and holds its members in a fixed order.
TEST(LogLines, JsonLinesStayValidJson) {
  LogCapture capture;
  const Log log = capture.make(LogFormat::json);
  {
    const service::LogContext context("ctx-1", "alice");
    log.warn("odd", "quote \" backslash \\ newline \n tab \t", {{"path", std::string("/v1/\xff\xfe\xc3\x28/\xe2\x82\xac")},
                                                                 {"ratio", 0.25}, {"big", std::uint64_t{1} << 63},
                                                                 {"neg", -3}, {"flag", true}, {"ids", std::vector<std::uint64_t>{}}});
  }
  log.info("outside", "no context");
  const auto lines = capture.lines();
  ASSERT_EQ(lines.size(), 2u);
  const json odd = json::parse(lines[0]);
  EXPECT_EQ(odd["message"], "quote \" backslash \\ newline \n tab \t");
  EXPECT_EQ(odd["path"], "/v1/\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd(/\xe2\x82\xac") << "invalid bytes replaced, the euro sign kept";
  EXPECT_EQ(odd["ratio"], 0.25);
  EXPECT_EQ(odd["big"], std::uint64_t{1} << 63);
  EXPECT_EQ(odd["neg"], -3);
  EXPECT_EQ(odd["flag"], true);
  EXPECT_EQ(odd["ids"], json::array());
  EXPECT_EQ(odd["request_id"], "ctx-1");
  EXPECT_EQ(odd["tenant"], "alice");
  EXPECT_EQ(lines[0].rfind("{\"time\":\"", 0), 0u) << lines[0];
  EXPECT_LT(lines[0].find("\"level\""), lines[0].find("\"event\"")) << lines[0];
  EXPECT_EQ(lines[0].find('\n'), std::string::npos);
  const json outside = json::parse(lines[1]);
  EXPECT_FALSE(outside.contains("request_id")) << "a context ends with its scope";
}

// The GPU supervisor's events as kilnd logs them (WorkerPool itself needs a GPU: test_kilnd_gpu
// provokes the real ones).
TEST(WorkerEventLog, EachKindAtItsLevelWithItsFields) {
  using service::WorkerEvent;
  LogCapture capture;
  const auto handler = service::log_worker_events(capture.make(LogFormat::json));
  WorkerEvent sticky;
  sticky.kind = WorkerEvent::Kind::sticky_fault;
  sticky.device = 1;
  sticky.message = "CUDA_ERROR_ILLEGAL_ADDRESS: an instruction accessed memory it may not";
  sticky.job_id = 42;
  sticky.request_id = "req-42";
  sticky.error_name = "CUDA_ERROR_ILLEGAL_ADDRESS";
  sticky.suspect_buffers = {7, 9};
  handler(sticky);
  WorkerEvent started;
  started.kind = WorkerEvent::Kind::worker_started;
  started.pid = 1234;
  started.message = "the GPU worker for GPU 0 (pid 1234) is up";
  handler(started);
  for (auto kind : {WorkerEvent::Kind::worker_exited, WorkerEvent::Kind::worker_start_failed, WorkerEvent::Kind::watchdog_kill,
                    WorkerEvent::Kind::circuit_open, WorkerEvent::Kind::circuit_closed}) {
    WorkerEvent e;
    e.kind = kind;
    handler(e);
  }

  const auto s = capture.events("sticky_fault");
  ASSERT_EQ(s.size(), 1u) << capture.all();
  EXPECT_EQ(s[0]["level"], "error");
  EXPECT_EQ(s[0]["device"], 1);
  EXPECT_EQ(s[0]["job"], 42);
  EXPECT_EQ(s[0]["request_id"], "req-42");
  EXPECT_EQ(s[0]["error"], "CUDA_ERROR_ILLEGAL_ADDRESS");
  EXPECT_EQ(s[0]["suspect_buffers"], json::array({7, 9}));
  EXPECT_EQ(s[0]["message"], sticky.message);
  const auto up = capture.events("worker_started");
  ASSERT_EQ(up.size(), 1u);
  EXPECT_EQ(up[0]["level"], "info");
  EXPECT_EQ(up[0]["pid"], 1234);
  EXPECT_FALSE(up[0].contains("suspect_buffers"));
  const std::pair<const char*, const char*> levels[] = {{"worker_exited", "warn"}, {"worker_start_failed", "error"},
                                                        {"watchdog_kill", "warn"}, {"circuit_open", "error"},
                                                        {"circuit_closed", "info"}};
  for (const auto& [event, level] : levels) {
    const auto e = capture.events(event);
    ASSERT_EQ(e.size(), 1u) << event << "\n" << capture.all();
    EXPECT_EQ(e[0]["level"], level) << event;
  }
}

// The real kilnd: --log-format json to standard error, read line by line.
TEST(KilndLogFile, KilndWritesJsonLinesToStandardError) {
  TempDir dir;
  {
    std::ofstream tokens(dir.path() / "tokens");
    tokens << "alice " << kAliceToken << "\n";
  }
  std::filesystem::permissions(dir.path() / "tokens", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  Child child({KILND_PATH, "--port", "0", "--tokens", (dir.path() / "tokens").string(), "--cache-dir",
               (dir.path() / "cache").string(), "--log-format", "json", "--log-level", "info"},
              /*with_stderr=*/true);
  std::string transcript;
  const std::string port = child.wait_for(std::regex("listening on http://127\\.0\\.0\\.1:([0-9]+)"), transcript);
  ASSERT_FALSE(port.empty()) << transcript;
  httplib::Client client("127.0.0.1", std::stoi(port));
  auto r = client.Get("/v1/kernels", {{"Authorization", std::string("Bearer ") + kAliceToken}, {"X-Request-Id", "e2e-77"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("X-Request-Id"), "e2e-77");
  EXPECT_EQ(child.terminate(), 0);
  while (auto text = child.line()) transcript += *text + "\n";

  std::vector<json> events;
  std::istringstream lines(transcript);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && line.front() == '{') {
      json j = json::parse(line, nullptr, false);
      ASSERT_TRUE(j.is_object()) << line;
      events.push_back(std::move(j));
    }
  auto count = [&](std::string_view event, auto&& pred) {
    return std::count_if(events.begin(), events.end(), [&](const json& j) { return j.value("event", "") == event && pred(j); });
  };
  auto any = [](const json&) { return true; };
  EXPECT_EQ(count("request", [](const json& j) { return j.value("request_id", "") == "e2e-77" && j.value("status", 0) == 200; }), 1)
      << transcript;
  EXPECT_EQ(count("listening", any), 1) << transcript;
  EXPECT_EQ(count("shutdown", [](const json& j) { return j.value("phase", "") == "signal"; }), 1) << transcript;
  EXPECT_EQ(count("shutdown", [](const json& j) { return j.value("phase", "") == "stopped"; }), 1) << transcript;
  EXPECT_EQ(transcript.find(kAliceToken), std::string::npos) << transcript;
}

// --log-file: text lines appended to the file, nothing of the log on standard error; a file that
// cannot be opened stops start-up naming it.
TEST(KilndLogFile, KilndAppendsTextLinesToTheLogFile) {
  TempDir dir;
  const auto log_file = dir.path() / "kilnd.log";
  {
    std::ofstream earlier(log_file);
    earlier << "an earlier line\n";
  }
  Child child({KILND_PATH, "--port", "0", "--cache-dir", (dir.path() / "cache").string(), "--log-file", log_file.string()},
              /*with_stderr=*/true);
  std::string transcript;
  const std::string port = child.wait_for(std::regex("listening on http://127\\.0\\.0\\.1:([0-9]+)"), transcript);
  ASSERT_FALSE(port.empty()) << transcript;
  httplib::Client client("127.0.0.1", std::stoi(port));
  auto r = client.Get("/healthz", {{"X-Request-Id", "to-the-file"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(child.terminate(), 0);
  while (auto text = child.line()) transcript += *text + "\n";
  EXPECT_EQ(transcript.find("request_id=to-the-file"), std::string::npos) << transcript;
  std::ifstream in(log_file);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str().rfind("an earlier line\n", 0), 0u) << "appended, not truncated";
  EXPECT_NE(text.str().find("INFO request: GET /healthz 200 request_id=to-the-file"), std::string::npos) << text.str();
  EXPECT_NE(text.str().find("INFO shutdown: stopped"), std::string::npos) << text.str();

  auto refused = run_process({KILND_PATH, "--port", "0", "--log-file", (log_file / "under-a-file.log").string()});
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("cannot open the log file"), std::string::npos) << refused.err;
  auto bad_flag = run_process({KILND_PATH, "--log-format", "xml"});
  EXPECT_EQ(bad_flag.exit_code, 2) << bad_flag.err;
}

// SIGHUP opens the log file again by its name, as logrotate expects: lines before it stay in the
// file that was moved away, lines after it go to a new file of the old name; kilnd keeps serving.
TEST(KilndLogFile, SighupOpensTheLogFileAgainAfterItWasMoved) {
  TempDir dir;
  const auto log_file = dir.path() / "kilnd.log", rotated = dir.path() / "kilnd.log.1";
  Child child({KILND_PATH, "--port", "0", "--cache-dir", (dir.path() / "cache").string(), "--log-file", log_file.string()},
              /*with_stderr=*/true);
  std::string transcript;
  const std::string port = child.wait_for(std::regex("listening on http://127\\.0\\.0\\.1:([0-9]+)"), transcript);
  ASSERT_FALSE(port.empty()) << transcript;
  httplib::Client client("127.0.0.1", std::stoi(port));
  ASSERT_TRUE(client.Get("/healthz", {{"X-Request-Id", "before-rotation"}}));
  std::filesystem::rename(log_file, rotated);
  ASSERT_EQ(::kill(child.pid(), SIGHUP), 0);
  auto read = [](const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  // The reopen is done when its own line is in the new file (the test's only wait).
  for (int i = 0; i < 3000 && read(log_file).find("log_reopened") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(client.Get("/healthz", {{"X-Request-Id", "after-rotation"}}));
  EXPECT_EQ(child.terminate(), 0);
  const std::string old_text = read(rotated), new_text = read(log_file);
  EXPECT_NE(old_text.find("request_id=before-rotation"), std::string::npos) << old_text;
  EXPECT_EQ(old_text.find("after-rotation"), std::string::npos) << old_text;
  EXPECT_NE(new_text.find("INFO log_reopened"), std::string::npos) << new_text;
  EXPECT_NE(new_text.find("request_id=after-rotation"), std::string::npos) << new_text;
  EXPECT_NE(new_text.find("INFO shutdown: stopped"), std::string::npos) << new_text;
}

}  // namespace
}  // namespace kiln::testing
