// kilnd's gRPC front end against its HTTP one, in one process and one run so the ratios mean
// something: both front ends over one service core (as kilnd serves them, tools/kilnd) on the
// instant backend (launches complete at once, buffers are host memory; no GPU), the same kernel,
// buffer and tenant. Measured:
//   - round trips, one client thread, kept alive: the loopback floor, ServiceCore::launch called
//     in process (no front end), GET /healthz and gRPC Health, GET /v1/buffers/{id} and gRPC GetBuffer
//     (authenticated, next to nothing in the core), POST /v1/launches (wait) and gRPC
//     Launch (wait); the samples of each are taken in interleaved rounds, so a load that comes and
//     goes on the machine falls on every row alike;
//   - launches/s: gRPC LaunchStream with 1 and 64 launches in flight on one stream, 64 unary
//     clients (one shared channel, and 64 channels of their own), HTTP's 64 kept-alive clients;
//   - 256 MiB upload then download into a host buffer: HTTP bodies (64 MiB ranges, and one 256 MiB
//     body: this bench raises max_body_bytes to 256 MiB) and gRPC Upload/Download in 1 MiB and
//     2 MiB (the largest) chunks, GB/s each way;
//   - last, gRPC's floor: servers answering Health with a constant (sync and callback API, no
//     kilnd), with kilnd's gRPC Health again beside them.
// Arguments: sequential requests per row (10000), seconds per throughput run (2; 0: none), transfer
// repeats (2; 0: none).
// About 45 s on a 2-core machine.
#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/service_core.hpp"
#include "grpc_server.hpp"
#include "instant_backend.hpp"
#include "kiln/service/server.hpp"
#include "kiln/service/token_store.hpp"
#include "kiln/v1/kilnd.grpc.pb.h"
#include "service_bench.hpp"
#include "timing.hpp"

using namespace kiln;
using kiln::bench::clk;
using kiln::bench::quantile;
using kiln::bench::us_since;
using nlohmann::json;
namespace v1 = kiln::v1;

namespace {

const std::string kToken = "bench-token-0123456789abcdef0123";
const std::string kBearer = "Bearer " + kToken;
constexpr std::size_t kMiB = std::size_t{1} << 20;
constexpr std::size_t kTransfer = 256 * kMiB;

void row(const char* what, const std::vector<double>& v) {
  std::printf("| %s | %.1f us | %.1f us |\n", what, quantile(v, .5), quantile(v, .99));
}

std::unique_ptr<grpc::ClientContext> context(bool token = true) {
  auto c = std::make_unique<grpc::ClientContext>();
  if (token) c->AddMetadata("authorization", kBearer);
  return c;
}

std::shared_ptr<grpc::Channel> channel(int port, bool own_connection) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(8 << 20);
  // A channel of its own connection (not the process-wide subchannel pool's shared one).
  if (own_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  std::string target = "127.0.0.1:";
  target += std::to_string(port);
  auto ch = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return ch;
}

// `clients` threads, each calling `one` (true: answered OK) back to back for `seconds`: calls/s.
template <class MakeClient>
double for_seconds(int clients, int seconds, long& failed, MakeClient make_client) {
  std::atomic<bool> stop{false};
  std::atomic<long> done{0}, bad{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i)
    threads.emplace_back([&, i] {
      auto one = make_client(i);
      while (!stop.load(std::memory_order_relaxed)) (one() ? done : bad).fetch_add(1);
    });
  const auto started = clk::now();
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  failed = bad.load();
  return static_cast<double>(done.load()) / (us_since(started) / 1e6);
}

// The first refusal a throughput run met, to print beside its count.
std::mutex first_failure_mutex;
std::string first_failure;
void note_failure(const grpc::Status& s, const v1::Job& job) {
  std::lock_guard lock(first_failure_mutex);
  if (!first_failure.empty()) return;
  first_failure = s.ok() ? "job " + job.status() : "code " + std::to_string(s.error_code()) + ": " + s.error_message();
}

// One HTTP/1.1 exchange on a plain socket (no client library): the request head, then `body`
// (may be empty) written straight from the caller's memory; the answer's body into `into`, read
// straight into place. Returns the status, or -1.
int raw_exchange(int port, const std::string& head, const char* body, std::size_t body_bytes, std::string& into) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int status = -1;
  auto send_all = [&](const char* p, std::size_t n) {
    while (n > 0) {
      const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
      if (w <= 0) return false;
      p += w;
      n -= static_cast<std::size_t>(w);
    }
    return true;
  };
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 && send_all(head.data(), head.size()) &&
      send_all(body, body_bytes)) {
    std::string in;
    char buffer[16384];
    std::size_t end = std::string::npos;
    while (end == std::string::npos) {
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      in.append(buffer, static_cast<std::size_t>(n));
      end = in.find("\r\n\r\n");
    }
    if (end != std::string::npos) {
      const auto length_at = in.find("Content-Length: ");
      const std::size_t length = length_at < end ? std::stoul(in.substr(length_at + 16)) : 0;
      into.resize(length);
      std::size_t have = std::min(length, in.size() - end - 4);
      std::memcpy(into.data(), in.data() + end + 4, have);
      while (have < length) {
        const ssize_t n = ::recv(fd, into.data() + have, length - have, 0);
        if (n <= 0) break;
        have += static_cast<std::size_t>(n);
      }
      if (have == length) status = std::stoi(in.substr(9, 3));
    }
  }
  ::close(fd);
  return status;
}

// gRPC's own floor: servers that answer Health with a constant and do nothing else (no kilnd), on
// gRPC's synchronous API (as kilnd's) and on its callback API.
class BareSyncService final : public v1::Kilnd::Service {
 public:
  grpc::Status Health(grpc::ServerContext*, const v1::HealthRequest*, v1::HealthReply* reply) override {
    reply->set_live(true);
    return grpc::Status::OK;
  }
};
class BareCallbackService final : public v1::Kilnd::WithCallbackMethod_Health<v1::Kilnd::Service> {
 public:
  using v1::Kilnd::WithCallbackMethod_Health<v1::Kilnd::Service>::Health;
  grpc::ServerUnaryReactor* Health(grpc::CallbackServerContext* context, const v1::HealthRequest*,
                                   v1::HealthReply* reply) override {
    reply->set_live(true);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};
std::unique_ptr<grpc::Server> bare_server(grpc::Service& service, int& port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  return builder.BuildAndStart();
}

double gbps(std::size_t bytes, double us) { return static_cast<double>(bytes) / (us * 1e3); }

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 10000;
  const int seconds = argc > 2 ? std::atoi(argv[2]) : 2;
  const int transfer_repeats = argc > 3 ? std::atoi(argv[3]) : 2;

  kiln::bench::InstantBackend backend;
  service::ServiceConfig config;
  config.port = 0;
  config.cache_dir = std::filesystem::temp_directory_path() / "kiln-bench-grpc-cache";
  config.max_queued_jobs_per_tenant = 10000;
  config.max_body_bytes = kTransfer;  // one 256 MiB HTTP body (the default, 64 MiB, would refuse it)
  service::Server server(config, service::TokenStore::single("bench", kToken), backend);
  server.start();
  // kilnd's gRPC options (grpc_options: grpc_threads threads, max_json_bytes messages: 4 MiB).
  service::GrpcOptions options = service::grpc_options(config);
  options.port = 0;
  service::GrpcServer grpc_server(server.core(), server.tokens(), options);
  grpc_server.start();

  const httplib::Headers auth = {{"Authorization", kBearer}};
  httplib::Client c("127.0.0.1", server.port());
  std::string why;
  const std::string launch_body =
      kiln::bench::empty_launch_request(c, auth, "extern \"C\" __global__ void empty(int* p) {}\n", &why);
  if (launch_body.empty()) {
    std::printf("setup failed: %s\n", why.c_str());
    return 1;
  }
  // The same launch three ways: the HTTP body, the gRPC message, the core's request.
  const json parsed_body = json::parse(launch_body);
  v1::LaunchRequest grpc_launch;
  grpc_launch.set_kernel_id(parsed_body["kernel"].get<std::uint64_t>());
  grpc_launch.set_function("empty");
  grpc_launch.add_arguments()->mutable_buffer()->set_buffer(parsed_body["arguments"][0]["buffer"].get<std::uint64_t>());
  grpc_launch.set_wait(true);
  auto core_launch = service::parse_launch_request(launch_body, server.core().request_limits());
  if (!core_launch.ok()) {
    std::printf("setup failed: the launch body does not parse\n");
    return 1;
  }

  // An authenticated request that does next to nothing in the core: the launch's buffer, read.
  v1::Id buffer_id;
  buffer_id.set_id(parsed_body["arguments"][0]["buffer"].get<std::uint64_t>());
  std::string buffer_path = "/v1/buffers/";
  buffer_path += std::to_string(buffer_id.id());
  auto shared = channel(grpc_server.port(), false);
  auto stub = v1::Kilnd::NewStub(shared);
  BareSyncService bare_sync;
  BareCallbackService bare_callback;

  // Round trips, interleaved: each row's samples come from every round.
  std::vector<double> floor, in_process, healthz, health, http_buffer, grpc_buffer, http_launch, grpc_launch_us;
  std::vector<double> grpc_floor_sync, grpc_floor_callback;  // measured last
  std::vector<kiln::bench::ServerTiming> timings;
  constexpr int kRounds = 4;
  {
    kiln::bench::OneWriteClient lean(server.port());
    for (int round = 0; round < kRounds; ++round) {
      const int n = reps / kRounds;
      const std::vector<double> f = kiln::bench::loopback_floor(n);
      floor.insert(floor.end(), f.begin(), f.end());
      for (int i = 0; i < n; ++i) {
        auto t = clk::now();
        auto launched = server.core().launch("bench", core_launch.value());
        if (!launched || launched->job.state != service::JobState::finished) {
          std::printf("in-process launch %d failed\n", i);
          return 1;
        }
        in_process.push_back(us_since(t));
      }
      for (int i = 0; i < n; ++i) {
        auto t = clk::now();
        if (lean.get("/healthz") != 200) return 1;
        healthz.push_back(us_since(t));
      }
      for (int i = 0; i < n; ++i) {
        auto t = clk::now();
        auto ctx = context(false);
        v1::HealthReply reply;
        if (!stub->Health(ctx.get(), {}, &reply).ok()) return 1;
        health.push_back(us_since(t));
      }
      for (int i = 0; i < n; ++i) {
        auto t = clk::now();
        if (lean.get(buffer_path, kBearer) != 200) return 1;
        http_buffer.push_back(us_since(t));
      }
      for (int i = 0; i < n; ++i) {
        auto t = clk::now();
        auto ctx = context();
        v1::Buffer reply;
        if (!stub->GetBuffer(ctx.get(), buffer_id, &reply).ok()) return 1;
        grpc_buffer.push_back(us_since(t));
      }
      for (int i = 0; i < n; ++i) {
        auto t = clk::now();
        if (lean.post("/v1/launches", kBearer, launch_body) != 200) {
          std::printf("HTTP launch %d failed\n", i);
          return 1;
        }
        http_launch.push_back(us_since(t));
        if (auto st = kiln::bench::server_timing(lean.last_head())) timings.push_back(*st);
      }
      for (int i = 0; i < n; ++i) {
        auto t = clk::now();
        auto ctx = context();
        v1::Job job;
        const grpc::Status s = stub->Launch(ctx.get(), grpc_launch, &job);
        if (!s.ok() || job.status() != "completed") {
          std::printf("gRPC launch %d failed: %s %s\n", i, s.error_message().c_str(), job.status().c_str());
          return 1;
        }
        grpc_launch_us.push_back(us_since(t));
      }
    }
  }

  // LaunchStream, `in_flight` launches written ahead of the answers read, for `seconds`.
  std::vector<double> stream_one;  // round trips with one in flight
  auto stream_rate = [&](int in_flight, long& failed) {
    auto ctx = context();
    auto stream = stub->LaunchStream(ctx.get());
    long written = 0, answered = 0;
    failed = 0;
    std::vector<clk::time_point> sent;
    v1::LaunchRequest request = grpc_launch;
    auto write = [&] {
      request.set_tag(std::to_string(written));
      if (in_flight == 1) sent.push_back(clk::now());
      ++written;
      return stream->Write(request);
    };
    for (int i = 0; i < in_flight; ++i)
      if (!write()) return 0.0;
    const auto started = clk::now();
    const auto until = started + std::chrono::seconds(seconds);
    v1::Job job;
    double rate = 0;
    bool writing = true;
    while (answered < written && stream->Read(&job)) {
      if (job.status() != "completed") ++failed;
      if (in_flight == 1) stream_one.push_back(us_since(sent[static_cast<std::size_t>(std::stoul(job.tag()))]));
      ++answered;
      if (!writing) continue;
      if (clk::now() >= until) {  // the rate of what was answered in time; the rest is drained
        rate = static_cast<double>(answered) / (us_since(started) / 1e6);
        writing = false;
        stream->WritesDone();
      } else if (!write()) {
        break;
      }
    }
    if (rate == 0) rate = static_cast<double>(answered) / (us_since(started) / 1e6);
    if (writing) stream->WritesDone();
    while (stream->Read(&job)) ++answered;
    const grpc::Status s = stream->Finish();
    if (!s.ok()) std::printf("LaunchStream ended: %s\n", s.error_message().c_str());
    failed += written - answered;
    return rate;
  };
  long stream1_failed = 0, stream64_failed = 0, unary_failed = 0, unary_own_failed = 0, http_failed = 0;
  double stream1 = 0, stream64 = 0, unary64 = 0, unary64_own = 0, http64 = 0;
  if (seconds > 0) {
    stream1 = stream_rate(1, stream1_failed);
    stream64 = stream_rate(64, stream64_failed);
    unary64 = for_seconds(64, seconds, unary_failed, [&](int) {
      return [&] {
        auto ctx = context();
        v1::Job job;
        const grpc::Status s = stub->Launch(ctx.get(), grpc_launch, &job);
        if (s.ok() && job.status() == "completed") return true;
        note_failure(s, job);
        return false;
      };
    });
    std::vector<std::shared_ptr<grpc::Channel>> own(64);
    unary64_own = for_seconds(64, seconds, unary_own_failed, [&](int i) {
      own[static_cast<std::size_t>(i)] = channel(grpc_server.port(), true);
      return [s = std::shared_ptr<v1::Kilnd::Stub>(v1::Kilnd::NewStub(own[static_cast<std::size_t>(i)])), &grpc_launch] {
        auto ctx = context();
        v1::Job job;
        const grpc::Status status = s->Launch(ctx.get(), grpc_launch, &job);
        if (status.ok() && job.status() == "completed") return true;
        note_failure(status, job);
        return false;
      };
    });
    own.clear();
    http64 = for_seconds(64, seconds, http_failed, [&](int) {
      return [cl = std::make_shared<kiln::bench::OneWriteClient>(server.port()), &launch_body] {
        return cl->post("/v1/launches", kBearer, launch_body) == 200;
      };
    });
  }

  // 256 MiB up then down, into one host buffer: GB/s of each repeat.
  std::string data(kTransfer, '\0');
  for (std::size_t i = 0; i < kTransfer; i += 4096) data[i] = static_cast<char>(i / 4096 * 7 + 1);
  auto big = c.Post("/v1/buffers", auth, json{{"bytes", kTransfer}}.dump(), "application/json");
  if (!big || big->status != 201) {
    std::printf("the 256 MiB buffer: %s\n", big ? big->body.c_str() : "no answer");
    return 1;
  }
  const std::uint64_t buffer = json::parse(big->body)["id"].get<std::uint64_t>();
  std::string data_path = "/v1/buffers/";
  data_path += std::to_string(buffer);
  data_path += "/data";
  httplib::Client bulk("127.0.0.1", server.port());
  bulk.set_keep_alive(true);
  bulk.set_read_timeout(60);
  bulk.set_write_timeout(60);
  bool all_ok = true;
  std::string back;
  // `range` bytes a request: HTTP PUT then GET with ?offset= (and &bytes=).
  auto http_transfer = [&](std::size_t range, double& up, double& down) {
    auto t = clk::now();
    for (std::size_t at = 0; at < kTransfer; at += range) {
      std::string path = data_path;
      path += "?offset=";
      path += std::to_string(at);
      auto r = bulk.Put(path, auth, data.data() + at, range, "application/octet-stream");
      all_ok = all_ok && r && r->status == 200;
    }
    up = us_since(t);
    back.clear();
    t = clk::now();
    for (std::size_t at = 0; at < kTransfer; at += range) {
      std::string path = data_path;
      path += "?offset=";
      path += std::to_string(at);
      path += "&bytes=";
      path += std::to_string(range);
      auto r = bulk.Get(path, auth);
      all_ok = all_ok && r && r->status == 200;
      if (r) back += r->body;
    }
    down = us_since(t);
    all_ok = all_ok && back == data;
  };
  auto raw_transfer = [&](std::size_t range, double& up, double& down) {
    std::string answer;
    auto t = clk::now();
    for (std::size_t at = 0; at < kTransfer; at += range) {
      std::string head = "PUT ";
      head += data_path;
      head += "?offset=";
      head += std::to_string(at);
      head += " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ";
      head += kBearer;
      head += "\r\nContent-Type: application/octet-stream\r\nConnection: close\r\nContent-Length: ";
      head += std::to_string(range);
      head += "\r\n\r\n";
      all_ok = all_ok && raw_exchange(server.port(), head, data.data() + at, range, answer) == 200;
    }
    up = us_since(t);
    back.assign(kTransfer, '\0');
    t = clk::now();
    for (std::size_t at = 0; at < kTransfer; at += range) {
      std::string head = "GET ";
      head += data_path;
      head += "?offset=";
      head += std::to_string(at);
      head += "&bytes=";
      head += std::to_string(range);
      head += " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ";
      head += kBearer;
      head += "\r\nConnection: close\r\n\r\n";
      all_ok = all_ok && raw_exchange(server.port(), head, nullptr, 0, answer) == 200 && answer.size() == range;
      if (answer.size() == range) std::memcpy(back.data() + at, answer.data(), range);
    }
    down = us_since(t);
    all_ok = all_ok && back == data;
  };
  auto grpc_transfer = [&](std::size_t chunk_bytes, double& up, double& down) {
    auto t = clk::now();
    {
      auto ctx = context();
      v1::UploadReply reply;
      auto writer = stub->Upload(ctx.get(), &reply);
      v1::UploadChunk chunk;
      for (std::size_t at = 0; at < kTransfer; at += chunk_bytes) {
        chunk.set_buffer(at == 0 ? buffer : 0);
        chunk.set_data(data.data() + at, chunk_bytes);
        if (!writer->Write(chunk)) break;
      }
      writer->WritesDone();
      all_ok = all_ok && writer->Finish().ok() && reply.bytes() == kTransfer;
    }
    up = us_since(t);
    back.clear();
    back.reserve(kTransfer);
    t = clk::now();
    {
      auto ctx = context();
      v1::DownloadRequest request;
      request.set_buffer(buffer);
      request.set_chunk_bytes(static_cast<std::uint32_t>(chunk_bytes));
      auto reader = stub->Download(ctx.get(), request);
      v1::DataChunk chunk;
      while (reader->Read(&chunk)) back += chunk.data();
      all_ok = all_ok && reader->Finish().ok();
    }
    down = us_since(t);
    all_ok = all_ok && back == data;
  };
  struct Way {
    const char* name;
    std::function<void(double&, double&)> run;
    std::vector<double> up, down;
  };
  std::vector<Way> ways;
  auto way = [&](const char* name, std::function<void(double&, double&)> run) { ways.push_back({name, std::move(run), {}, {}}); };
  way("HTTP, PUT/GET bodies of 64 MiB (?offset=), cpp-httplib client",
      [&](double& u, double& d) { http_transfer(64 * kMiB, u, d); });
  way("HTTP, PUT/GET bodies of 64 MiB (?offset=), plain-socket client",
      [&](double& u, double& d) { raw_transfer(64 * kMiB, u, d); });
  way("HTTP, one 256 MiB body each way (max_body_bytes raised)", [&](double& u, double& d) { http_transfer(kTransfer, u, d); });
  way("gRPC Upload/Download, 1 MiB chunks", [&](double& u, double& d) { grpc_transfer(kMiB, u, d); });
  way("gRPC Upload/Download, 2 MiB chunks (the largest)", [&](double& u, double& d) { grpc_transfer(2 * kMiB, u, d); });
  for (int r = 0; r < transfer_repeats; ++r)
    for (Way& w : ways) {
      double up = 0, down = 0;
      w.run(up, down);
      w.up.push_back(gbps(kTransfer, up));
      w.down.push_back(gbps(kTransfer, down));
    }

  // gRPC's floor, last of all and in rounds of its own: once a second gRPC server has run in this
  // process, every other row is slower (gRPC's threads stay), so none is measured after it.
  std::vector<double> health_last;
  for (int round = 0; round < kRounds; ++round) {
    const int n = reps / kRounds;
    for (auto [service, into] : {std::pair<grpc::Service*, std::vector<double>*>{&bare_sync, &grpc_floor_sync},
                                 std::pair<grpc::Service*, std::vector<double>*>{&bare_callback, &grpc_floor_callback}}) {
      int port = 0;
      auto bare = bare_server(*service, port);
      if (!bare) {
        std::printf("setup failed: a bare gRPC server\n");
        return 1;
      }
      auto bare_stub = v1::Kilnd::NewStub(channel(port, true));
      for (int i = 0; i < n; ++i) {
        auto t = clk::now();
        auto ctx = context(false);
        v1::HealthReply reply;
        if (!bare_stub->Health(ctx.get(), {}, &reply).ok()) return 1;
        into->push_back(us_since(t));
      }
      bare->Shutdown();
    }
    for (int i = 0; i < n; ++i) {
      auto t = clk::now();
      auto ctx = context(false);
      v1::HealthReply reply;
      if (!stub->Health(ctx.get(), {}, &reply).ok()) return 1;
      health_last.push_back(us_since(t));
    }
  }

  std::printf("| %d round trips a row, one client thread, kept alive, %d interleaved rounds | p50 | p99 |\n"
              "| --- | --- | --- |\n",
              reps, kRounds);
  row("this machine's loopback floor (fixed HTTP answer, blocking socket thread)", floor);
  row("ServiceCore::launch in process (wait), no front end", in_process);
  row("HTTP GET /healthz", healthz);
  row("gRPC Health", health);
  row("HTTP GET /v1/buffers/{id} (authenticated, no launch)", http_buffer);
  row("gRPC GetBuffer (authenticated, no launch)", grpc_buffer);
  row("HTTP POST /v1/launches, wait", http_launch);
  row("gRPC Launch, wait", grpc_launch_us);
  if (!stream_one.empty()) row("gRPC LaunchStream, 1 in flight (write to its answer)", stream_one);
  const double core50 = quantile(in_process, .5), core99 = quantile(in_process, .99);
  row("gRPC's floor, measured last: a bare sync server's Health (no kilnd)", grpc_floor_sync);
  row("gRPC's floor, measured last: a bare callback-API server's Health (no kilnd)", grpc_floor_callback);
  row("gRPC Health (kilnd's), measured again beside the floors", health_last);
  std::printf("gRPC/HTTP: launch p50 %.2fx, p99 %.2fx; health p50 %.2fx, p99 %.2fx\n",
              quantile(grpc_launch_us, .5) / quantile(http_launch, .5), quantile(grpc_launch_us, .99) / quantile(http_launch, .99),
              quantile(health, .5) / quantile(healthz, .5), quantile(health, .99) / quantile(healthz, .99));
  std::printf("over the in-process core launch: gRPC p50 +%.1f us, p99 +%.1f us; HTTP p50 +%.1f us, p99 +%.1f us\n",
              quantile(grpc_launch_us, .5) - core50, quantile(grpc_launch_us, .99) - core99,
              quantile(http_launch, .5) - core50, quantile(http_launch, .99) - core99);
  kiln::bench::print_server_timing(timings);
  if (seconds > 0) {
    std::printf("\n| launches/s, instant backend, %d s each | launches/s | failed |\n| --- | --- | --- |\n", seconds);
    std::printf("| gRPC LaunchStream, 1 in flight | %.0f | %ld |\n", stream1, stream1_failed);
    std::printf("| gRPC LaunchStream, 64 in flight | %.0f | %ld |\n", stream64, stream64_failed);
    std::printf("| gRPC Launch, 64 client threads, one channel | %.0f | %ld |\n", unary64, unary_failed);
    std::printf("| gRPC Launch, 64 client threads, a channel (connection) each | %.0f | %ld |\n", unary64_own, unary_own_failed);
    std::printf("| HTTP POST /v1/launches, 64 kept-alive clients | %.0f | %ld |\n", http64, http_failed);
    if (!first_failure.empty()) std::printf("the first gRPC refusal: %s\n", first_failure.c_str());
  }
  if (transfer_repeats > 0) {
    std::printf("\n| 256 MiB upload then download, host buffer, mean of %d (min-max) | upload GB/s | download GB/s |\n"
                "| --- | --- | --- |\n",
                transfer_repeats);
    for (const Way& w : ways) {
      auto [umin, umax] = std::minmax_element(w.up.begin(), w.up.end());
      auto [dmin, dmax] = std::minmax_element(w.down.begin(), w.down.end());
      auto mean = [](const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size()); };
      std::printf("| %s | %.2f (%.2f-%.2f) | %.2f (%.2f-%.2f) |\n", w.name, mean(w.up), *umin, *umax, mean(w.down), *dmin,
                  *dmax);
    }
    std::printf("transfers %s\n", all_ok ? "all answered OK and the bytes came back intact" : "FAILED (see above)");
  }

  grpc_server.stop(std::chrono::seconds(1));
  server.stop();
  return all_ok ? 0 : 1;
}
