// kilnd's gRPC front end end to end: a real gRPC server on loopback over a service core on the
// FakeGpu (buffers are host bytes, launches complete at once), and real client stubs. Kernels are
// compiled by the real NVRTC.
#include <gtest/gtest.h>

#include <grpcpp/generic/generic_stub.h>
#include <google/protobuf/descriptor.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "core/service_core.hpp"
#include "grpc_server.hpp"
#include "jit/kernels.hpp"
#include "kiln/service/server.hpp"
#include "kiln/v1/kilnd.grpc.pb.h"
#include "support/child.hpp"
#include "support/fake_gpu.hpp"
#include "support/shared_object.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

namespace kiln::service {
namespace {

namespace v1 = kiln::v1;
using jit::test_kernels::kSaxpy;

constexpr const char* kAlice = "alice-token-0123456789abcdef";
constexpr const char* kBob = "bob-token-0123456789abcdef00";
constexpr std::size_t kMaxMessage = 256 * 1024;

std::string trailer(const grpc::ClientContext& context, const std::string& key) {
  const auto& all = context.GetServerTrailingMetadata();
  const auto it = all.find(key);
  return it == all.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

class GrpcTest : public ::testing::Test {
 protected:
  GrpcTest() : GrpcTest(false) {}
  explicit GrpcTest(bool allow_client_shm) {
    config_.allow_client_shm = allow_client_shm;
    config_.max_shm_regions_per_tenant = 4;
    dir_ = std::filesystem::temp_directory_path() / ("kiln-grpc-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(dir_);
    config_.cache_dir = dir_ / "cache";
    config_.drain_timeout = std::chrono::milliseconds(200);
    config_.max_json_bytes = kMaxMessage;
    core_ = std::make_unique<core::ServiceCore>(config_, gpu_);
    GrpcOptions options = grpc_options(config_);
    options.port = 0;
    server_ = std::make_unique<GrpcServer>(*core_, tokens_, options);
    server_->start();
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()), grpc::InsecureChannelCredentials());
    stub_ = v1::Kilnd::NewStub(channel_);
  }
  ~GrpcTest() override {
    server_->stop(std::chrono::seconds(1));
    core_->shutdown();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // A context carrying `token` (none when null), with a deadline so a hang fails the test.
  static std::unique_ptr<grpc::ClientContext> context(const char* token = kAlice) {
    auto c = std::make_unique<grpc::ClientContext>();
    if (token) c->AddMetadata("authorization", std::string("Bearer ") + token);
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return c;
  }

  v1::Kernel register_saxpy(const char* token = kAlice) {
    v1::KernelRequest request;
    request.set_source(kSaxpy);
    request.set_name("saxpy.cu");
    v1::Kernel kernel;
    auto c = context(token);
    const grpc::Status s = stub_->RegisterKernel(c.get(), request, &kernel);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return kernel;
  }

  v1::Buffer create_buffer(std::uint64_t bytes, const char* token = kAlice) {
    v1::BufferRequest request;
    request.set_bytes(bytes);
    request.set_tag("t");
    v1::Buffer buffer;
    auto c = context(token);
    const grpc::Status s = stub_->CreateBuffer(c.get(), request, &buffer);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return buffer;
  }

  std::filesystem::path dir_;
  ServiceConfig config_;
  testing::FakeGpu gpu_;
  TokenStore tokens_ = TokenStore::parse(std::string("alice ") + kAlice + "\nbob " + kBob + "\n", "test");
  std::unique_ptr<core::ServiceCore> core_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Kilnd::Stub> stub_;
};

TEST_F(GrpcTest, HealthNeedsNoToken) {
  v1::HealthReply reply;
  auto c = context(nullptr);
  ASSERT_TRUE(stub_->Health(c.get(), {}, &reply).ok());
  EXPECT_TRUE(reply.live());
  EXPECT_TRUE(reply.ready()) << reply.why_not_ready();
  EXPECT_FALSE(reply.draining());
}

TEST_F(GrpcTest, RegistersGetsAndListsAKernel) {
  const v1::Kernel k = register_saxpy();
  ASSERT_NE(k.id(), 0u);
  EXPECT_EQ(k.name(), "saxpy.cu");
  ASSERT_EQ(k.targets_size(), 1);
  EXPECT_EQ(k.targets(0).arch(), "sm_90");

  v1::Id id;
  id.set_id(k.id());
  v1::Kernel got;
  auto c = context();
  ASSERT_TRUE(stub_->GetKernel(c.get(), id, &got).ok());
  EXPECT_EQ(got.id(), k.id());
  EXPECT_EQ(got.name(), "saxpy.cu");

  v1::KernelPage page;
  c = context();
  ASSERT_TRUE(stub_->ListKernels(c.get(), {}, &page).ok());
  ASSERT_EQ(page.kernels_size(), 1);
  EXPECT_EQ(page.kernels(0).id(), k.id());
  EXPECT_FALSE(page.has_next_after());

  v1::Empty empty;
  c = context();
  ASSERT_TRUE(stub_->DeleteKernel(c.get(), id, &empty).ok());
  c = context();
  EXPECT_EQ(stub_->GetKernel(c.get(), id, &got).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(GrpcTest, BuffersAreCreatedListedAndDeleted) {
  const v1::Buffer a = create_buffer(64), b = create_buffer(128);
  EXPECT_EQ(a.bytes(), 64u);
  v1::BufferPage page;
  auto c = context();
  ASSERT_TRUE(stub_->ListBuffers(c.get(), {}, &page).ok());
  ASSERT_EQ(page.buffers_size(), 2);
  EXPECT_EQ(page.buffers(1).id(), b.id());
  EXPECT_EQ(page.buffers(1).tag(), "t");

  v1::PageRequest one;
  one.set_limit(1);
  page.Clear();
  c = context();
  ASSERT_TRUE(stub_->ListBuffers(c.get(), one, &page).ok());
  ASSERT_EQ(page.buffers_size(), 1);
  ASSERT_TRUE(page.has_next_after());

  v1::Id id;
  id.set_id(a.id());
  v1::Empty empty;
  c = context();
  ASSERT_TRUE(stub_->DeleteBuffer(c.get(), id, &empty).ok());
  v1::Buffer got;
  c = context();
  EXPECT_EQ(stub_->GetBuffer(c.get(), id, &got).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(gpu_.buffers(), 1u);
}

TEST_F(GrpcTest, UploadAndDownloadRoundTripInChunks) {
  // Larger than one message may be: chunks carry it.
  const std::size_t bytes = 3 * kMaxMessage + 123;
  const v1::Buffer buffer = create_buffer(bytes);
  std::string data(bytes, '\0');
  for (std::size_t i = 0; i < bytes; ++i) data[i] = static_cast<char>(i * 7 + 3);

  auto c = context();
  v1::UploadReply reply;
  {
    auto writer = stub_->Upload(c.get(), &reply);
    constexpr std::size_t kChunk = 100 * 1024;
    for (std::size_t at = 0; at < bytes; at += kChunk) {
      v1::UploadChunk chunk;
      if (at == 0) chunk.set_buffer(buffer.id());
      chunk.set_data(data.substr(at, kChunk));
      ASSERT_TRUE(writer->Write(chunk));
    }
    writer->WritesDone();
    const grpc::Status s = writer->Finish();
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(reply.bytes(), bytes);

  v1::DownloadRequest request;
  request.set_buffer(buffer.id());
  request.set_chunk_bytes(64 * 1024);
  c = context();
  auto reader = stub_->Download(c.get(), request);
  std::string back;
  v1::DataChunk chunk;
  int chunks = 0;
  while (reader->Read(&chunk)) back += chunk.data(), ++chunks;
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(back.size(), bytes);
  EXPECT_TRUE(back == data);
  EXPECT_GT(chunks, 3);

  // A range past the end is the core's refusal.
  request.set_offset(bytes);
  request.set_bytes(1);
  c = context();
  reader = stub_->Download(c.get(), request);
  while (reader->Read(&chunk)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(trailer(*c, "kiln-error-code"), "bad_request");
}

TEST_F(GrpcTest, LaunchesOnTheFakeGpuAndReadsTheJob) {
  const v1::Kernel k = register_saxpy();
  const v1::Buffer x = create_buffer(1024), y = create_buffer(1024);
  v1::LaunchRequest request;
  request.set_kernel_id(k.id());
  request.set_function("saxpy");
  request.add_grid(1);
  request.add_block(256);
  auto* a = request.add_arguments()->mutable_scalar();
  a->set_type("f32");
  a->set_real(2.0);
  request.add_arguments()->mutable_buffer()->set_buffer(x.id());
  request.add_arguments()->mutable_buffer()->set_buffer(y.id());
  auto* n = request.add_arguments()->mutable_scalar();
  n->set_type("i32");
  n->set_integer(256);
  request.set_wait(true);
  v1::Job job;
  auto c = context();
  const grpc::Status s = stub_->Launch(c.get(), request, &job);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(job.state(), "finished");
  EXPECT_EQ(job.status(), "completed");
  ASSERT_EQ(gpu_.launched().size(), 1u);
  EXPECT_EQ(gpu_.launched()[0].block[0], 256u);

  v1::JobRequest get;
  get.set_id(job.id());
  v1::Job again;
  c = context();
  ASSERT_TRUE(stub_->GetJob(c.get(), get, &again).ok());
  EXPECT_EQ(again.id(), job.id());
  v1::JobPage jobs;
  c = context();
  ASSERT_TRUE(stub_->ListJobs(c.get(), {}, &jobs).ok());
  EXPECT_EQ(jobs.jobs_size(), 1);

  // LaunchStream: each request answered in order.
  c = context();
  auto stream = stub_->LaunchStream(c.get());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(stream->Write(request));
  stream->WritesDone();
  int answered = 0;
  while (stream->Read(&job)) {
    EXPECT_EQ(job.status(), "completed");
    ++answered;
  }
  ASSERT_TRUE(stream->Finish().ok());
  EXPECT_EQ(answered, 3);
}

// A launch request for saxpy over two new buffers, tagged.
v1::LaunchRequest saxpy_launch(std::uint64_t kernel, std::uint64_t x, std::uint64_t y, bool wait, const std::string& tag) {
  v1::LaunchRequest request;
  request.set_kernel_id(kernel);
  request.set_function("saxpy");
  request.add_block(32);
  auto* a = request.add_arguments()->mutable_scalar();
  a->set_type("f32");
  a->set_real(2.0);
  request.add_arguments()->mutable_buffer()->set_buffer(x);
  request.add_arguments()->mutable_buffer()->set_buffer(y);
  auto* n = request.add_arguments()->mutable_scalar();
  n->set_type("i32");
  n->set_integer(32);
  request.set_wait(wait);
  request.set_tag(tag);
  return request;
}

// 64 clients each waiting on a launch at once (the GPU held): every call gets a thread of its own,
// none is refused RESOURCE_EXHAUSTED (gRPC's sync server refuses rather than queues; with the pool
// at http_threads, 16, most of these were refused), and all complete once the GPU runs.
TEST_F(GrpcTest, SixtyFourClientsWaitingOnLaunchesAreAllServed) {
  const v1::Kernel k = register_saxpy();
  const v1::Buffer x = create_buffer(1024), y = create_buffer(1024);
  std::promise<void> open;
  std::shared_future<void> gate = open.get_future().share();
  gpu_.set_launch_hook([gate](const LaunchSpec&) { gate.wait(); });
  constexpr int kClients = 64;
  std::vector<grpc::Status> statuses(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i)
    clients.emplace_back([&, i] {
      auto c = context();
      v1::Job job;
      statuses[static_cast<std::size_t>(i)] = stub_->Launch(c.get(), saxpy_launch(k.id(), x.id(), y.id(), /*wait=*/true, ""), &job);
    });
  auto jobs = [&] { return core_->list_jobs("alice", {0, core::kMaxPageSize}).items.size(); };
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (jobs() < kClients && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(jobs(), static_cast<std::size_t>(kClients));  // each call is in a handler, its launch submitted
  open.set_value();
  for (auto& t : clients) t.join();
  for (const grpc::Status& s : statuses) EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
}

// LaunchStream reads on while launches run, at most 64 with wait in flight: with the GPU held, 64
// are submitted and no more; once it runs, every request is answered, each with its tag.
TEST_F(GrpcTest, LaunchStreamPipelinesWithABoundOnLaunchesInFlight) {
  const v1::Kernel k = register_saxpy();
  const v1::Buffer x = create_buffer(1024), y = create_buffer(1024);
  std::promise<void> open;
  std::shared_future<void> gate = open.get_future().share();
  gpu_.set_launch_hook([gate](const LaunchSpec&) { gate.wait(); });
  struct Opener {
    std::promise<void>& p;
    bool done = false;
    void now() {
      if (!done) p.set_value(), done = true;
    }
    ~Opener() { now(); }
  } opener{open};
  auto jobs = [&] { return core_->list_jobs("alice", {0, core::kMaxPageSize}).items.size(); };

  constexpr int kLaunches = 100;
  auto c = context();
  auto stream = stub_->LaunchStream(c.get());
  for (int i = 0; i < kLaunches; ++i) {
    std::string tag = "launch-";
    tag += std::to_string(i);
    ASSERT_TRUE(stream->Write(saxpy_launch(k.id(), x.id(), y.id(), /*wait=*/true, tag)));
  }
  stream->WritesDone();
  // Submitted while the first ones are held on the GPU: pipelined, up to the bound.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (jobs() < 64 && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(jobs(), 64u);
  // And no more while none finishes (a broken bound submits all 100 in far less than this).
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(jobs(), 64u);

  opener.now();
  std::set<std::string> tags;
  std::set<std::uint64_t> ids;
  v1::Job job;
  while (stream->Read(&job)) {
    EXPECT_EQ(job.state(), "finished");
    EXPECT_EQ(job.status(), "completed");
    EXPECT_TRUE(tags.insert(job.tag()).second) << "answered twice: " << job.tag();
    ids.insert(job.id());
  }
  const grpc::Status s = stream->Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(tags.size(), static_cast<std::size_t>(kLaunches));
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kLaunches));
  EXPECT_EQ(tags.count("launch-0"), 1u);
  EXPECT_EQ(tags.count("launch-99"), 1u);
  EXPECT_EQ(gpu_.launched().size(), static_cast<std::size_t>(kLaunches));
}

// Without wait a launch is answered at once (queued, or already run); a refusal ends the stream
// with its status after the launches accepted before it are answered, and nothing after it runs.
TEST_F(GrpcTest, LaunchStreamAnswersEachAcceptedLaunchThenEndsWithTheFirstRefusal) {
  const v1::Kernel k = register_saxpy();
  const v1::Buffer x = create_buffer(1024), y = create_buffer(1024);
  auto c = context();
  auto stream = stub_->LaunchStream(c.get());
  ASSERT_TRUE(stream->Write(saxpy_launch(k.id(), x.id(), y.id(), true, "a")));
  ASSERT_TRUE(stream->Write(saxpy_launch(k.id(), x.id(), y.id(), false, "b")));
  v1::LaunchRequest bad = saxpy_launch(k.id(), x.id(), y.id(), true, "c");
  bad.clear_function();
  stream->Write(bad);
  stream->Write(saxpy_launch(k.id(), x.id(), y.id(), true, "d"));
  stream->WritesDone();
  std::map<std::string, v1::Job> answered;
  v1::Job job;
  while (stream->Read(&job)) answered[job.tag()] = job;
  const grpc::Status s = stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_EQ(trailer(*c, "kiln-error-field"), "function");
  ASSERT_EQ(answered.size(), 2u);
  EXPECT_EQ(answered["a"].status(), "completed");
  EXPECT_NE(answered["b"].id(), 0u);
  EXPECT_EQ(core_->list_jobs("alice", {}).items.size(), 2u);  // "d" was never submitted

  // Launch echoes the tag too; one over 256 bytes is refused naming it.
  v1::Job one;
  c = context();
  ASSERT_TRUE(stub_->Launch(c.get(), saxpy_launch(k.id(), x.id(), y.id(), true, "unary"), &one).ok());
  EXPECT_EQ(one.tag(), "unary");
  c = context();
  EXPECT_EQ(stub_->Launch(c.get(), saxpy_launch(k.id(), x.id(), y.id(), true, std::string(257, 't')), &one).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(trailer(*c, "kiln-error-field"), "tag");
}

TEST_F(GrpcTest, AWrongTokenIsUnauthenticated) {
  v1::KernelPage page;
  auto c = context("not-a-token-of-anyone-0000000");
  EXPECT_EQ(stub_->ListKernels(c.get(), {}, &page).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(trailer(*c, "kiln-error-code"), "unauthorized");
  c = context(nullptr);
  EXPECT_EQ(stub_->ListKernels(c.get(), {}, &page).error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(GrpcTest, AnUnknownIdIsNotFoundWithItsCode) {
  v1::Id id;
  id.set_id(424242);
  v1::Kernel k;
  auto c = context();
  const grpc::Status s = stub_->GetKernel(c.get(), id, &k);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_FALSE(s.error_message().empty());
  EXPECT_EQ(trailer(*c, "kiln-error-code"), "not_found");
}

TEST_F(GrpcTest, AnInvalidArgumentNamesItsField) {
  v1::BufferRequest zero;  // bytes 0: the HTTP API's rule ("must be at least 1")
  v1::Buffer b;
  auto c = context();
  EXPECT_EQ(stub_->CreateBuffer(c.get(), zero, &b).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(trailer(*c, "kiln-error-code"), "bad_request");
  EXPECT_EQ(trailer(*c, "kiln-error-field"), "bytes");

  const v1::Kernel k = register_saxpy();
  v1::LaunchRequest launch;
  launch.set_kernel_id(k.id());
  launch.set_function("saxpy");
  auto* arg = launch.add_arguments()->mutable_scalar();
  arg->set_type("i32");
  arg->set_real(1.5);
  v1::Job job;
  c = context();
  EXPECT_EQ(stub_->Launch(c.get(), launch, &job).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(trailer(*c, "kiln-error-field"), "arguments[0].value");

  // A compile failure: INVALID_ARGUMENT with the API's code and the diagnostics in the details.
  v1::KernelRequest bad;
  bad.set_source("__global__ void k() { undefined_thing(); }");
  v1::Kernel out;
  c = context();
  EXPECT_EQ(stub_->RegisterKernel(c.get(), bad, &out).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(trailer(*c, "kiln-error-code"), "compile_failed");
  EXPECT_NE(trailer(*c, "kiln-error-details").find("diagnostics"), std::string::npos);
}

TEST_F(GrpcTest, AMessageOverTheLimitIsRefusedAndTheServerServesOn) {
  v1::KernelRequest big;
  big.set_source(std::string(kMaxMessage + 1024, ' ') + kSaxpy);
  v1::Kernel k;
  auto c = context();
  EXPECT_EQ(stub_->RegisterKernel(c.get(), big, &k).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  v1::HealthReply health;
  c = context();
  EXPECT_TRUE(stub_->Health(c.get(), {}, &health).ok());
}

TEST_F(GrpcTest, AnotherTenantsKernelAndBufferAreNotFound) {
  const v1::Kernel k = register_saxpy(kAlice);
  const v1::Buffer b = create_buffer(16, kAlice);
  v1::Id id;
  id.set_id(k.id());
  v1::Kernel got;
  auto c = context(kBob);
  EXPECT_EQ(stub_->GetKernel(c.get(), id, &got).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::KernelPage page;
  c = context(kBob);
  ASSERT_TRUE(stub_->ListKernels(c.get(), {}, &page).ok());
  EXPECT_EQ(page.kernels_size(), 0);
  id.set_id(b.id());
  v1::Empty empty;
  c = context(kBob);
  EXPECT_EQ(stub_->DeleteBuffer(c.get(), id, &empty).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(gpu_.buffers(), 1u);
}

TEST_F(GrpcTest, AChunkNamingAnotherBufferIsRefused) {
  const v1::Buffer a = create_buffer(16), b = create_buffer(16);
  auto c = context();
  v1::UploadReply reply;
  auto writer = stub_->Upload(c.get(), &reply);
  v1::UploadChunk chunk;
  chunk.set_buffer(a.id());
  chunk.set_data("abcd");
  ASSERT_TRUE(writer->Write(chunk));
  chunk.set_buffer(b.id());
  writer->Write(chunk);
  writer->WritesDone();
  EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(trailer(*c, "kiln-error-field"), "buffer");
}

TEST_F(GrpcTest, WithoutARepositoryTheIndexIsEmptyAndPackagesAreNotFound) {
  v1::RepositoryList list;
  auto c = context();
  ASSERT_TRUE(stub_->RepositoryIndex(c.get(), {}, &list).ok());
  EXPECT_FALSE(list.enabled());
  EXPECT_EQ(list.mode(), "none");
  v1::PackageRequest request;
  request.set_name("saxpy");
  v1::Package package;
  c = context();
  EXPECT_EQ(stub_->GetPackage(c.get(), request, &package).error_code(), grpc::StatusCode::NOT_FOUND);
  request.set_version(0);  // the HTTP API's rule: a version is at least 1
  c = context();
  EXPECT_EQ(stub_->LoadPackage(c.get(), request, &package).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(trailer(*c, "kiln-error-field"), "version");
  v1::LibraryList libraries;
  c = context();
  EXPECT_TRUE(stub_->ListLibraries(c.get(), {}, &libraries).ok());
}

TEST_F(GrpcTest, WhileDrainingCallsAreUnavailableAndHealthSaysSo) {
  core_->begin_drain();
  v1::KernelPage page;
  auto c = context();
  EXPECT_EQ(stub_->ListKernels(c.get(), {}, &page).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(trailer(*c, "kiln-error-code"), "shutting_down");
  v1::HealthReply health;
  c = context(nullptr);
  ASSERT_TRUE(stub_->Health(c.get(), {}, &health).ok());
  EXPECT_TRUE(health.draining());
}

TEST_F(GrpcTest, StopLetsACallInProgressFinishAndRefusesNewOnes) {
  const v1::Kernel k = register_saxpy();
  gpu_.set_launch_hook([](const LaunchSpec&) { std::this_thread::sleep_for(std::chrono::milliseconds(400)); });
  v1::LaunchRequest request;
  request.set_kernel_id(k.id());
  request.set_function("saxpy");
  request.set_wait(true);
  auto running = std::async(std::launch::async, [&] {
    v1::Job job;
    auto c = context();
    const grpc::Status s = stub_->Launch(c.get(), request, &job);
    return s.ok() ? job.status() : "error: " + s.error_message();
  });
  while (gpu_.launched().empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto t0 = std::chrono::steady_clock::now();
  server_->stop(std::chrono::seconds(5));
  EXPECT_EQ(running.get(), "completed");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  v1::KernelPage page;
  auto c = context();
  EXPECT_FALSE(stub_->ListKernels(c.get(), {}, &page).ok());  // the listener is gone
}

// Each call is counted by method and status code, in the text GET /metrics serves (the core's).
TEST_F(GrpcTest, CallsAreCountedInTheMetricsByMethodAndCode) {
  v1::KernelPage page;
  for (int i = 0; i < 2; ++i) {
    auto c = context();
    ASSERT_TRUE(stub_->ListKernels(c.get(), {}, &page).ok());
  }
  v1::Id id;
  id.set_id(424242);
  v1::Kernel k;
  auto c = context();
  ASSERT_EQ(stub_->GetKernel(c.get(), id, &k).error_code(), grpc::StatusCode::NOT_FOUND);
  c = context("not-a-token-of-anyone-0000000");
  ASSERT_EQ(stub_->ListKernels(c.get(), {}, &page).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  v1::HealthReply health;
  c = context(nullptr);
  ASSERT_TRUE(stub_->Health(c.get(), {}, &health).ok());
  // A stream is one call, counted when it ends.
  c = context();
  auto stream = stub_->LaunchStream(c.get());
  stream->WritesDone();
  v1::Job job;
  EXPECT_FALSE(stream->Read(&job));
  ASSERT_TRUE(stream->Finish().ok());

  // Each answer is counted before it is sent: the client that has it finds it counted.
  const std::string text = core_->metrics_text();
  EXPECT_NE(text.find("# TYPE kiln_grpc_requests_total counter\n"), std::string::npos) << text;
  for (const char* line : {"kiln_grpc_requests_total{method=\"ListKernels\",code=\"OK\"} 2\n",
                           "kiln_grpc_requests_total{method=\"ListKernels\",code=\"UNAUTHENTICATED\"} 1\n",
                           "kiln_grpc_requests_total{method=\"GetKernel\",code=\"NOT_FOUND\"} 1\n",
                           "kiln_grpc_requests_total{method=\"Health\",code=\"OK\"} 1\n",
                           "kiln_grpc_requests_total{method=\"LaunchStream\",code=\"OK\"} 1\n"})
    EXPECT_NE(text.find(line), std::string::npos) << line << " not in:\n" << text;
  EXPECT_EQ(text.find("method=\"RegisterKernel\""), std::string::npos) << "a method never called has no series";
}

// ---- client shared memory: real POSIX objects (support/shared_object.hpp), as over HTTP
// (test_http_shm.cpp), through the gRPC methods.

TEST_F(GrpcTest, SharedMemoryIsRefusedUnlessTheServiceAllowsIt) {
  testing::SharedObject o(4096);
  v1::SharedMemoryRequest request;
  request.set_name(o.name());
  request.set_bytes(4096);
  v1::SharedMemory region;
  auto c = context();
  const grpc::Status s = stub_->RegisterSharedMemory(c.get(), request, &region);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_EQ(trailer(*c, "kiln-error-code"), "forbidden");
  EXPECT_NE(s.error_message().find("allow_client_shm"), std::string::npos) << s.error_message();
  EXPECT_NE(trailer(*c, "kiln-error-hint").find("allow_client_shm"), std::string::npos);
}

class GrpcShmTest : public GrpcTest {
 protected:
  GrpcShmTest() : GrpcTest(true) {}

  grpc::Status register_region(const testing::SharedObject& o, std::uint64_t bytes, std::uint64_t offset,
                               v1::SharedMemory& region, const char* token = kAlice, std::uint32_t owner_pid = 0) {
    v1::SharedMemoryRequest request;
    request.set_name(o.name());
    request.set_bytes(bytes);
    request.set_offset(offset);
    request.set_owner_pid(owner_pid);
    auto c = context(token);
    const grpc::Status s = stub_->RegisterSharedMemory(c.get(), request, &region);
    last_field_ = trailer(*c, "kiln-error-field");
    return s;
  }
  std::uint64_t region_id(const testing::SharedObject& o, std::uint64_t bytes, std::uint64_t offset = 0,
                          const char* token = kAlice) {
    v1::SharedMemory region;
    const grpc::Status s = register_region(o, bytes, offset, region, token);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return region.id();
  }
  grpc::Status copy(const v1::SharedMemoryCopyRequest& request, v1::SharedMemoryCopyReply& reply, const char* token = kAlice) {
    auto c = context(token);
    const grpc::Status s = stub_->CopySharedMemory(c.get(), request, &reply);
    last_field_ = trailer(*c, "kiln-error-field");
    last_code_ = trailer(*c, "kiln-error-code");
    return s;
  }
  static v1::SharedMemoryCopyRequest copy_request(std::uint64_t buffer, const char* direction, std::uint64_t region) {
    v1::SharedMemoryCopyRequest r;
    r.set_buffer(buffer);
    r.set_direction(direction);
    r.set_region(region);
    return r;
  }
  std::string download(std::uint64_t buffer) {
    v1::DownloadRequest request;
    request.set_buffer(buffer);
    auto c = context();
    auto reader = stub_->Download(c.get(), request);
    std::string back;
    v1::DataChunk chunk;
    while (reader->Read(&chunk)) back += chunk.data();
    const grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    return back;
  }
  void upload(std::uint64_t buffer, const std::string& data) {
    auto c = context();
    v1::UploadReply reply;
    auto writer = stub_->Upload(c.get(), &reply);
    constexpr std::size_t kChunk = 100 * 1024;  // under the message limit
    for (std::size_t at = 0; at < data.size(); at += kChunk) {
      v1::UploadChunk chunk;
      if (at == 0) chunk.set_buffer(buffer);
      chunk.set_data(data.substr(at, kChunk));
      ASSERT_TRUE(writer->Write(chunk));
    }
    writer->WritesDone();
    const grpc::Status s = writer->Finish();
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  std::string last_field_, last_code_;
};

TEST_F(GrpcShmTest, ARegionIsTheTenantsOwnUntilUnregistered) {
  testing::SharedObject o(1 << 16);
  v1::SharedMemory region;
  ASSERT_TRUE(register_region(o, 4096, 512, region, kAlice, static_cast<std::uint32_t>(::getpid())).ok());
  EXPECT_NE(region.id(), 0u);
  EXPECT_EQ(region.name(), o.name());
  EXPECT_EQ(region.bytes(), 4096u);
  EXPECT_EQ(region.offset(), 512u);
  EXPECT_EQ(region.owner_pid(), static_cast<std::uint32_t>(::getpid()));  // the request's, as over HTTP
  EXPECT_FALSE(region.pinned());                                           // no GPU here to pin it for

  v1::Id id;
  id.set_id(region.id());
  v1::SharedMemory got;
  auto c = context();
  ASSERT_TRUE(stub_->GetSharedMemory(c.get(), id, &got).ok());
  EXPECT_EQ(got.id(), region.id());
  EXPECT_EQ(got.name(), o.name());
  EXPECT_EQ(got.owner_pid(), region.owner_pid());

  // Another tenant sees nothing: not its get, its list, its unregister or its copies.
  c = context(kBob);
  EXPECT_EQ(stub_->GetSharedMemory(c.get(), id, &got).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(trailer(*c, "kiln-error-code"), "not_found");
  v1::Empty empty;
  c = context(kBob);
  EXPECT_EQ(stub_->UnregisterSharedMemory(c.get(), id, &empty).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::SharedMemoryPage page;
  c = context(kBob);
  ASSERT_TRUE(stub_->ListSharedMemory(c.get(), {}, &page).ok());
  EXPECT_EQ(page.regions_size(), 0);
  const v1::Buffer bobs = create_buffer(4096, kBob);
  v1::SharedMemoryCopyReply copied;
  EXPECT_EQ(copy(copy_request(bobs.id(), "upload", region.id()), copied, kBob).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(last_field_, "region");
  // Nor may Alice's region reach Bob's buffer through Alice.
  EXPECT_EQ(copy(copy_request(bobs.id(), "upload", region.id()), copied, kAlice).error_code(), grpc::StatusCode::NOT_FOUND);

  page.Clear();
  c = context();
  ASSERT_TRUE(stub_->ListSharedMemory(c.get(), {}, &page).ok());
  ASSERT_EQ(page.regions_size(), 1);
  EXPECT_EQ(page.regions(0).id(), region.id());

  c = context();
  ASSERT_TRUE(stub_->UnregisterSharedMemory(c.get(), id, &empty).ok());
  c = context();
  EXPECT_EQ(stub_->GetSharedMemory(c.get(), id, &got).error_code(), grpc::StatusCode::NOT_FOUND);
  c = context();
  EXPECT_EQ(stub_->UnregisterSharedMemory(c.get(), id, &empty).error_code(), grpc::StatusCode::NOT_FOUND);
  page.Clear();
  c = context();
  ASSERT_TRUE(stub_->ListSharedMemory(c.get(), {}, &page).ok());
  EXPECT_EQ(page.regions_size(), 0);
}

TEST_F(GrpcShmTest, CopiesBothWaysAreByteIdentical) {
  constexpr std::size_t kBytes = (1 << 20) + 4099;  // more than one message may carry
  testing::SharedObject o(kBytes + 8192);
  const std::uint64_t id = region_id(o, kBytes, 100);  // at an offset no page starts at
  unsigned char* base = o.data() + 100;
  std::string expected(kBytes, '\0');
  for (std::size_t i = 0; i < kBytes; ++i) expected[i] = static_cast<char>((i * 2654435761u) >> 13);
  std::memcpy(base, expected.data(), kBytes);
  const v1::Buffer buffer = create_buffer(kBytes);

  // Upload: region -> buffer, the whole region when bytes is absent.
  v1::SharedMemoryCopyReply reply;
  grpc::Status s = copy(copy_request(buffer.id(), "upload", id), reply);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(reply.bytes(), kBytes);
  EXPECT_EQ(reply.direction(), "upload");
  EXPECT_TRUE(download(buffer.id()) == expected);  // read back through gRPC's own path

  // Download: buffer -> region, with new bytes in the buffer.
  std::string other(kBytes, '\0');
  for (std::size_t i = 0; i < kBytes; ++i) other[i] = static_cast<char>(i * 31 + 7);
  upload(buffer.id(), other);
  std::memset(base, 0, kBytes);
  s = copy(copy_request(buffer.id(), "download", id), reply);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(reply.bytes(), kBytes);
  EXPECT_EQ(reply.direction(), "download");
  EXPECT_EQ(std::memcmp(base, other.data(), kBytes), 0);

  // A part: 1000 bytes of the buffer from offset 5000 to region_offset 300; nothing else moves.
  std::memset(base, 0, kBytes);
  v1::SharedMemoryCopyRequest part = copy_request(buffer.id(), "download", id);
  part.set_offset(5000);
  part.set_region_offset(300);
  part.set_bytes(1000);
  s = copy(part, reply);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(reply.bytes(), 1000u);
  EXPECT_EQ(std::memcmp(base + 300, other.data() + 5000, 1000), 0);
  EXPECT_EQ(base[299], 0);
  EXPECT_EQ(base[1300], 0);
}

TEST_F(GrpcShmTest, OutOfRangeAndBadRequestsAreRefusedNamingTheField) {
  testing::SharedObject o(8192);
  const std::uint64_t id = region_id(o, 4096);
  const v1::Buffer buffer = create_buffer(1024);
  struct Case {
    v1::SharedMemoryCopyRequest request;
    grpc::StatusCode status;
    std::string field;
  };
  std::vector<Case> cases;
  auto with = [&](auto change, grpc::StatusCode status, std::string field) {
    v1::SharedMemoryCopyRequest r = copy_request(buffer.id(), "upload", id);
    r.set_bytes(16);
    change(r);
    cases.push_back({r, status, std::move(field)});
  };
  using grpc::StatusCode;
  with([](auto& r) { r.set_region_offset(4097); }, StatusCode::INVALID_ARGUMENT, "region_offset");
  with([](auto& r) { r.set_region_offset(4090); }, StatusCode::INVALID_ARGUMENT, "bytes");  // overruns the region
  with([](auto& r) { r.set_bytes(2048); }, StatusCode::INVALID_ARGUMENT, "bytes");          // overruns the buffer
  with([](auto& r) { r.set_offset(1020); }, StatusCode::INVALID_ARGUMENT, "bytes");
  with([](auto& r) { r.clear_bytes(); }, StatusCode::INVALID_ARGUMENT, "bytes");  // the whole region: 4096 > 1024
  with([](auto& r) { r.set_direction("sideways"); }, StatusCode::INVALID_ARGUMENT, "direction");
  with([](auto& r) { r.clear_direction(); }, StatusCode::INVALID_ARGUMENT, "direction");
  with([](auto& r) { r.set_region(0); }, StatusCode::INVALID_ARGUMENT, "region");
  with([&](auto& r) { r.set_region(id + 1000); }, StatusCode::NOT_FOUND, "region");
  with([&](auto& r) { r.set_buffer(buffer.id() + 1000); }, StatusCode::NOT_FOUND, "");
  for (const Case& c : cases) {
    v1::SharedMemoryCopyReply reply;
    const grpc::Status s = copy(c.request, reply);
    EXPECT_EQ(s.error_code(), c.status) << c.request.ShortDebugString() << ": " << s.error_message();
    EXPECT_EQ(last_field_, c.field) << c.request.ShortDebugString() << ": " << s.error_message();
    EXPECT_EQ(last_code_, c.status == StatusCode::NOT_FOUND ? "not_found" : "bad_request") << c.request.ShortDebugString();
  }

  // Registration: the HTTP API's rules.
  struct Registration {
    std::string name;
    std::uint64_t bytes, offset;
    std::string field;
  };
  const Registration bad[] = {
      {"no-slash", 16, 0, "name"},
      {"/kiln-test-no-such-object", 16, 0, "name"},
      {o.name(), 8193, 0, "bytes"},
      {o.name(), 4096, 4097, "bytes"},
      {o.name(), 0, 0, "bytes"},
  };
  for (const Registration& r : bad) {
    v1::SharedMemoryRequest request;
    request.set_name(r.name);
    request.set_bytes(r.bytes);
    request.set_offset(r.offset);
    v1::SharedMemory region;
    auto c = context();
    const grpc::Status s = stub_->RegisterSharedMemory(c.get(), request, &region);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << request.ShortDebugString() << ": " << s.error_message();
    EXPECT_EQ(trailer(*c, "kiln-error-field"), r.field) << request.ShortDebugString() << ": " << s.error_message();
  }
  // A process that has ended cannot own a region (spawned, not forked: gRPC's threads run here).
  pid_t child = 0;
  char true_path[] = "/bin/true";
  char* const argv[] = {true_path, nullptr};
  ASSERT_EQ(::posix_spawn(&child, true_path, nullptr, nullptr, argv, nullptr), 0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  v1::SharedMemory region;
  EXPECT_EQ(register_region(o, 16, 0, region, kAlice, static_cast<std::uint32_t>(child)).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(last_field_, "owner_pid");
  // At most max_shm_regions_per_tenant (4), per tenant: RESOURCE_EXHAUSTED, as HTTP's 429.
  for (int i = 0; i < 3; ++i) region_id(o, 16);
  EXPECT_EQ(register_region(o, 16, 0, region).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(register_region(o, 16, 0, region, kBob).ok());
}

TEST_F(GrpcShmTest, ListsPageInIdOrder) {
  testing::SharedObject o(4096);
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(region_id(o, 64));
  v1::PageRequest request;
  request.set_limit(2);
  v1::SharedMemoryPage page;
  auto c = context();
  ASSERT_TRUE(stub_->ListSharedMemory(c.get(), request, &page).ok());
  ASSERT_EQ(page.regions_size(), 2);
  EXPECT_EQ(page.regions(0).id(), ids[0]);
  EXPECT_EQ(page.regions(1).id(), ids[1]);
  ASSERT_TRUE(page.has_next_after());
  request.set_after(page.next_after());
  page.Clear();
  c = context();
  ASSERT_TRUE(stub_->ListSharedMemory(c.get(), request, &page).ok());
  ASSERT_EQ(page.regions_size(), 1);
  EXPECT_EQ(page.regions(0).id(), ids[2]);
  EXPECT_FALSE(page.has_next_after());
}

// Calls `method` with raw bytes through a generic stub; the status it ends with.
grpc::Status raw_call(grpc::Channel& channel, const std::string& method, const std::string& bytes, const char* token) {
  grpc::GenericStub stub(std::shared_ptr<grpc::ChannelInterface>(&channel, [](grpc::ChannelInterface*) {}));
  grpc::ClientContext context;
  if (token) context.AddMetadata("authorization", std::string("Bearer ") + token);
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  return done.get_future().get();
}

TEST_F(GrpcTest, MalformedProtobufIsRefusedAndTheServerServesOn) {
  // A field header announcing more bytes than follow, then bytes that are no wire format at all.
  const std::string garbage = std::string("\x0a\xff\xff\xff\xff\x0f", 6) + std::string(64, '\xff');
  for (const char* method : {"/kiln.v1.Kilnd/GetKernel", "/kiln.v1.Kilnd/RegisterKernel", "/kiln.v1.Kilnd/Launch"}) {
    const grpc::Status s = raw_call(*channel_, method, garbage, kAlice);
    EXPECT_TRUE(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT || s.error_code() == grpc::StatusCode::INTERNAL)
        << method << ": " << s.error_code() << " " << s.error_message();
  }
  const v1::Kernel k = register_saxpy();
  EXPECT_NE(k.id(), 0u);
}

// Every method of kilnd.proto answers (with its own refusal for an empty request), except those
// GrpcServer lists as deliberately unimplemented, which answer UNIMPLEMENTED with a message.
TEST(GrpcSurface, EveryMethodIsImplementedOrDeliberatelyUnimplemented) {
  const auto* service = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName("kiln.v1.Kilnd");
  ASSERT_NE(service, nullptr);
  std::set<std::string> unimplemented;
  for (std::string_view m : GrpcServer::unimplemented_methods()) unimplemented.emplace(m);
  const std::set<std::string> expected = {
      "Health",         "RegisterKernel", "GetKernel",     "DeleteKernel",    "ListKernels",   "CreateBuffer",
      "GetBuffer",      "DeleteBuffer",   "ListBuffers",   "Upload",          "Download",      "Launch",
      "RegisterSharedMemory", "GetSharedMemory", "UnregisterSharedMemory", "ListSharedMemory", "CopySharedMemory",
      "LaunchStream",   "GetJob",         "ListJobs",      "ListLibraries",   "RepositoryIndex", "GetPackage",
      "LoadPackage",    "UnloadPackage",  "RollbackPackage"};
  std::set<std::string> methods;
  for (int i = 0; i < service->method_count(); ++i) methods.insert(service->method(i)->name());
  EXPECT_EQ(methods, expected) << "kilnd.proto changed: update this list and GrpcServer";

  std::filesystem::path dir = std::filesystem::temp_directory_path() / ("kiln-grpc-surface-" + std::to_string(std::random_device{}()));
  ServiceConfig config;
  config.cache_dir = dir / "cache";
  config.drain_timeout = std::chrono::milliseconds(100);
  testing::FakeGpu gpu;
  core::ServiceCore core(config, gpu);
  const TokenStore tokens = TokenStore::single("alice", kAlice);
  GrpcServer server(core, tokens, GrpcOptions{});
  server.start();
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server.port()), grpc::InsecureChannelCredentials());
  for (int i = 0; i < service->method_count(); ++i) {
    const std::string name = service->method(i)->name();
    const grpc::Status s = raw_call(*channel, "/kiln.v1.Kilnd/" + name, "", kAlice);
    if (unimplemented.count(name)) {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED) << name;
      EXPECT_FALSE(s.error_message().empty()) << name;
    } else {
      EXPECT_NE(s.error_code(), grpc::StatusCode::UNIMPLEMENTED) << name << ": " << s.error_message();
    }
  }
  server.stop();
  core.shutdown();
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

// Every HTTP route has its gRPC method, or is HTTP only on purpose (the reason beside it): a new
// route fails here until it is given one or a reason.
TEST(GrpcSurface, EveryHttpRouteHasAMethodOrAReason) {
  const std::map<std::string, std::string> method_of = {
      {"GET /healthz", "Health"},
      {"GET /readyz", "Health"},
      {"GET /metrics", ""},  // Prometheus scrapes HTTP
      {"POST /v1/kernels", "RegisterKernel"},
      {"GET /v1/kernels", "ListKernels"},
      {"GET /v1/kernels/{id}", "GetKernel"},
      {"DELETE /v1/kernels/{id}", "DeleteKernel"},
      {"POST /v1/buffers", "CreateBuffer"},
      {"GET /v1/buffers", "ListBuffers"},
      {"GET /v1/buffers/{id}", "GetBuffer"},
      {"DELETE /v1/buffers/{id}", "DeleteBuffer"},
      {"PUT /v1/buffers/{id}/data", "Upload"},
      {"GET /v1/buffers/{id}/data", "Download"},
      {"POST /v1/launches", "Launch"},
      {"GET /v1/jobs", "ListJobs"},
      {"GET /v1/jobs/{id}", "GetJob"},
      {"POST /v1/buffers/{id}/shm", "CopySharedMemory"},
      {"POST /v1/shm", "RegisterSharedMemory"},
      {"GET /v1/shm", "ListSharedMemory"},
      {"GET /v1/shm/{id}", "GetSharedMemory"},
      {"DELETE /v1/shm/{id}", "UnregisterSharedMemory"},
      {"GET /v1/libraries", "ListLibraries"},
      {"GET /", ""},  // the status page is for browsers
      {"GET /status/app.js", ""},
      {"GET /status/app.css", ""},
      {"GET /v1/status", ""},
      {"GET /v1/status/topology.svg", ""},
      {"GET /v1/repository", "RepositoryIndex"},
      {"GET /v1/repository/{name}", "GetPackage"},
      {"POST /v1/repository/{name}/load", "LoadPackage"},
      {"POST /v1/repository/{name}/unload", "UnloadPackage"},
      {"POST /v1/repository/{name}/rollback", "RollbackPackage"},
  };
  const auto* service = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName("kiln.v1.Kilnd");
  ASSERT_NE(service, nullptr);
  for (const Route& r : Server::routes()) {
    const std::string key = std::string(r.method) + " " + std::string(r.path);
    const auto it = method_of.find(key);
    ASSERT_NE(it, method_of.end()) << key << ": a new HTTP route; give it a gRPC method in kilnd.proto or a reason here";
    if (!it->second.empty()) {
      EXPECT_NE(service->FindMethodByName(it->second), nullptr) << key << " -> " << it->second;
    }
  }
}

// A loopback port free a moment ago (kilnd's grpc_port 0 means off, so the test picks one).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &size) != 0) {
    if (fd >= 0) ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// kilnd itself: --grpc-port serves gRPC beside HTTP with the tokens file's tenants, and SIGTERM
// stops both cleanly.
TEST(KilndGrpc, ServesGrpcBesideHttpAndStopsOnSigterm) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("kiln-grpc-kilnd-" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokens") << "alice " << kAlice << "\n";
  std::filesystem::permissions(dir / "tokens", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  const int port = free_port();
  ASSERT_NE(port, 0);
  {
    testing::Child child({KILND_PATH, "--port", "0", "--grpc-port", std::to_string(port), "--tokens", (dir / "tokens").string(),
                          "--cache-dir", (dir / "cache").string()});
    std::string transcript;
    const std::string http_port = child.wait_for(std::regex("listening on http://127\\.0\\.0\\.1:([0-9]+)"), transcript);
    ASSERT_FALSE(http_port.empty()) << transcript;
    const std::string bound = child.wait_for(std::regex("serving gRPC on 127\\.0\\.0\\.1:([0-9]+)"), transcript);
    ASSERT_EQ(bound, std::to_string(port)) << transcript;
    auto stub = v1::Kilnd::NewStub(grpc::CreateChannel("127.0.0.1:" + bound, grpc::InsecureChannelCredentials()));
    grpc::ClientContext health_context;
    v1::HealthReply health;
    ASSERT_TRUE(stub->Health(&health_context, {}, &health).ok());
    EXPECT_TRUE(health.live());
    grpc::ClientContext list_context;
    list_context.AddMetadata("authorization", std::string("Bearer ") + kAlice);
    v1::KernelPage page;
    EXPECT_TRUE(stub->ListKernels(&list_context, {}, &page).ok());
    grpc::ClientContext refused_context;
    refused_context.AddMetadata("authorization", std::string("Bearer ") + kBob);
    EXPECT_EQ(stub->ListKernels(&refused_context, {}, &page).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    // GET /metrics counts those gRPC calls beside HTTP's.
    httplib::Client http("127.0.0.1", std::stoi(http_port));
    http.set_read_timeout(std::chrono::seconds(30));
    const auto metrics = http.Get("/metrics");
    ASSERT_TRUE(metrics && metrics->status == 200);
    for (const char* line : {"kiln_grpc_requests_total{method=\"Health\",code=\"OK\"} 1\n",
                             "kiln_grpc_requests_total{method=\"ListKernels\",code=\"OK\"} 1\n",
                             "kiln_grpc_requests_total{method=\"ListKernels\",code=\"UNAUTHENTICATED\"} 1\n"})
      EXPECT_NE(metrics->body.find(line), std::string::npos) << line << " not in:\n" << metrics->body;
    // With the client still connected: stopping waits for calls in progress, not for connections.
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(child.terminate(), 0);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

}  // namespace
}  // namespace kiln::service
