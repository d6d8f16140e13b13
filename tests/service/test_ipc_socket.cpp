// kilnd's IPC socket for co-located clients, end to end over a real Unix socket with real
// descriptors passed by SCM_RIGHTS. The GPU is the FakeGpu, whose buffers are memfds: an export
// hands out the buffer's own memory and an import maps the client's, as CUDA IPC does with device
// memory (the GPU version of these tests is in test_kilnd_gpu.cpp), so "no copy" is checked here
// by writing on one side and reading on the other.
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <regex>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/service_core.hpp"
#include "kiln/ipc/channel.hpp"
#include "kiln/service/ipc_socket_server.hpp"
#include "kiln/service/token_store.hpp"
#include "support/fake_gpu.hpp"
#include "support/http_fixture.hpp"
#include "support/child.hpp"

namespace kiln::service {
namespace {

using json = nlohmann::json;

constexpr const char* kAlice = "alice-token-0123456789abcdef";
constexpr const char* kBob = "bob-token-0123456789abcdef0";

ipc::UniqueFd connect_to(const std::string& path) {
  ipc::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.data(), path.size());
  if (!fd || ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) return {};
  return fd;
}

// A client as a user would write one: kiln's frame format, at most one descriptor each way.
class Client {
 public:
  explicit Client(const std::string& path) {
    ipc::UniqueFd fd = connect_to(path);
    EXPECT_TRUE(fd) << "cannot connect to " << path << ": " << std::strerror(errno);
    ipc::ChannelOptions options;
    options.peer = "kilnd";
    channel_ = ipc::Channel(std::move(fd), options);
  }
  struct Reply {
    json body;
    std::vector<ipc::UniqueFd> fds;
    std::string code() const { return body.contains("error") ? body["error"].value("code", "") : ""; }
  };
  Reply ask(const json& request, std::span<const int> fds = {}) { return ask_raw(request.dump(), fds); }
  Reply ask_raw(std::string_view payload, std::span<const int> fds = {}) {
    channel_.send(IpcSocketServer::kRequestFrame, payload, fds, ipc::Channel::deadline_after(std::chrono::seconds(10)));
    ipc::Received r = channel_.receive_for(std::chrono::seconds(30));
    EXPECT_TRUE(r) << "no reply";
    if (!r) return {};
    EXPECT_EQ(r.frame.type, IpcSocketServer::kReplyFrame);
    return {json::parse(r.frame.payload), std::move(r.frame.fds)};
  }
  ipc::Channel& channel() { return channel_; }

 private:
  ipc::Channel channel_;
};

// A memfd of `bytes` holding `pattern` repeated, mapped: what a client's device memory is to the FakeGpu.
struct ClientMemory {
  ipc::UniqueFd fd;
  std::byte* data = nullptr;
  std::size_t size = 0;
  ClientMemory(std::size_t bytes, std::uint8_t pattern) : fd(::memfd_create("client", MFD_CLOEXEC)), size(bytes) {
    EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(bytes)), 0);
    data = static_cast<std::byte*>(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0));
    std::memset(data, pattern, bytes);
  }
  ~ClientMemory() { ::munmap(data, size); }
};

class IpcSocketTest : public ::testing::Test {
 protected:
  void start(bool allow = true) {
    config_.cache_dir = dir_.path() / "cache";
    config_.allow_client_ipc = allow;
    core_ = std::make_unique<core::ServiceCore>(config_, gpu_);
    path_ = (dir_.path() / "kilnd.sock").string();
    server_ = std::make_unique<IpcSocketServer>(*core_, tokens_, path_, Log{});
    server_->start();
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (core_) core_->shutdown();
  }
  std::uint64_t create_buffer(const std::string& tenant, std::uint64_t bytes) {
    auto b = core_->create_buffer(tenant, BufferRequest{0, bytes, "t"});
    EXPECT_TRUE(b) << (b ? "" : b.error().message);
    return b ? b->id : 0;
  }

  testing::TempDir dir_;
  ServiceConfig config_;
  testing::FakeGpu gpu_;
  TokenStore tokens_ = TokenStore::parse(std::string("alice ") + kAlice + "\nbob " + kBob + "\n", "test");
  std::unique_ptr<core::ServiceCore> core_;
  std::string path_;
  std::unique_ptr<IpcSocketServer> server_;
};

TEST_F(IpcSocketTest, HelloNamesTheProtocolWithoutAToken) {
  start();
  Client c(path_);
  const Client::Reply r = c.ask({{"op", "hello"}});
  EXPECT_EQ(r.body["protocol"], IpcSocketServer::kProtocolVersion) << r.body.dump();
  EXPECT_EQ(r.body["ops"], json({"hello", "export_buffer", "import_buffer"}));
  EXPECT_EQ(std::filesystem::status(path_).permissions() & std::filesystem::perms::others_all,
            std::filesystem::perms::none);
}

TEST_F(IpcSocketTest, AnExportIsTheBuffersOwnMemoryNotACopy) {
  start();
  const std::uint64_t id = create_buffer("alice", 4096);
  const std::string hello(64, 'k');
  ASSERT_TRUE(core_->write_buffer("alice", id, 0, std::as_bytes(std::span(hello.data(), hello.size()))));
  Client c(path_);
  Client::Reply r = c.ask({{"op", "export_buffer"}, {"token", kAlice}, {"buffer", id}});
  ASSERT_EQ(r.code(), "") << r.body.dump();
  ASSERT_EQ(r.fds.size(), 1u);
  EXPECT_EQ(r.body["buffer"]["id"], id);
  EXPECT_EQ(r.body["buffer"]["bytes"], 4096);
  EXPECT_EQ(r.body["buffer"]["imported"], false);
  EXPECT_EQ(r.body["mapped_bytes"], 4096);
  auto* mapped = static_cast<char*>(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, r.fds[0].get(), 0));
  ASSERT_NE(mapped, MAP_FAILED);
  EXPECT_EQ(std::string(mapped, 64), hello);  // what kilnd wrote, the client reads
  std::memcpy(mapped + 100, "from the client", 15);
  auto read = core_->read_buffer("alice", id, 100, 15);
  ASSERT_TRUE(read);
  EXPECT_EQ(read.value(), "from the client");  // and the other way
  ::munmap(mapped, 4096);
}

TEST_F(IpcSocketTest, AnImportIsTheClientsMemoryAndBelongsToItsTenant) {
  start();
  ClientMemory memory(8192, 0x5a);
  Client c(path_);
  const int fds[] = {memory.fd.get()};
  Client::Reply r = c.ask({{"op", "import_buffer"}, {"token", kAlice}, {"bytes", 8192}, {"tag", "mine"}}, fds);
  ASSERT_EQ(r.code(), "") << r.body.dump();
  EXPECT_TRUE(r.fds.empty());
  const std::uint64_t id = r.body["buffer"]["id"];
  EXPECT_EQ(r.body["buffer"]["imported"], true);
  EXPECT_EQ(r.body["buffer"]["owner_pid"], ::getpid());
  EXPECT_EQ(r.body["buffer"]["tag"], "mine");
  auto read = core_->read_buffer("alice", id, 0, 4);
  ASSERT_TRUE(read);
  EXPECT_EQ(read.value(), std::string(4, '\x5a'));
  ASSERT_TRUE(core_->write_buffer("alice", id, 10, std::as_bytes(std::span("kiln", 4))));
  EXPECT_EQ(std::memcmp(memory.data + 10, "kiln", 4), 0);  // kilnd wrote into the client's memory
  // Another tenant: absent, as everywhere.
  EXPECT_EQ(core_->buffer("bob", id).error().kind, core::ErrorKind::not_found);
  EXPECT_EQ(c.ask({{"op", "export_buffer"}, {"token", kBob}, {"buffer", id}}).code(), "not_found");
  // Deleting it frees kilnd's mapping; the client's memory is the client's.
  const std::size_t before = gpu_.buffers();
  ASSERT_TRUE(core_->delete_buffer("alice", id));
  EXPECT_EQ(gpu_.buffers(), before - 1);
  EXPECT_EQ(static_cast<unsigned char>(memory.data[0]), 0x5a);
}

TEST_F(IpcSocketTest, BadRequestsAreRefusedAndTheConnectionServesOn) {
  start();
  const std::uint64_t id = create_buffer("alice", 4096);
  Client c(path_);
  EXPECT_EQ(c.ask_raw("not json").code(), "bad_request");
  EXPECT_EQ(c.ask_raw("[1, 2]").body["error"]["field"], "op");
  EXPECT_EQ(c.ask({{"op", "explode"}, {"token", kAlice}}).body["error"]["field"], "op");
  EXPECT_EQ(c.ask({{"op", "export_buffer"}, {"buffer", id}}).code(), "unauthorized");
  EXPECT_EQ(c.ask({{"op", "export_buffer"}, {"token", "wrong-token-0123456789abcdef"}, {"buffer", id}}).code(), "unauthorized");
  EXPECT_EQ(c.ask({{"op", "export_buffer"}, {"token", kAlice}, {"buffer", "1"}}).body["error"]["field"], "buffer");
  EXPECT_EQ(c.ask({{"op", "export_buffer"}, {"token", kAlice}, {"buffer", 999}}).code(), "not_found");
  // An import needs exactly one descriptor, its size, and memory that holds it.
  EXPECT_EQ(c.ask({{"op", "import_buffer"}, {"token", kAlice}, {"bytes", 4096}}).body["error"]["field"], "fd");
  ClientMemory small(4096, 1), other(4096, 2);
  const int one[] = {small.fd.get()};
  const int two[] = {small.fd.get(), other.fd.get()};
  EXPECT_EQ(c.ask({{"op", "import_buffer"}, {"token", kAlice}, {"bytes", 4096}}, two).body["error"]["field"], "fd");
  EXPECT_EQ(c.ask({{"op", "import_buffer"}, {"token", kAlice}}, one).body["error"]["field"], "bytes");
  EXPECT_EQ(c.ask({{"op", "import_buffer"}, {"token", kAlice}, {"bytes", 0}}, one).body["error"]["field"], "bytes");
  EXPECT_EQ(c.ask({{"op", "import_buffer"}, {"token", kAlice}, {"bytes", 4096}, {"device", -1}}, one).body["error"]["field"],
            "device");
  EXPECT_EQ(c.ask({{"op", "import_buffer"}, {"token", kAlice}, {"bytes", 4096}, {"device", 3}}, one).body["error"]["field"],
            "device");
  const Client::Reply too_big = c.ask({{"op", "import_buffer"}, {"token", kAlice}, {"bytes", 1 << 20}}, one);
  EXPECT_EQ(too_big.body["error"]["field"], "fd") << too_big.body.dump();
  EXPECT_NE(too_big.body["error"]["message"].get<std::string>().find("does not hold"), std::string::npos);
  EXPECT_EQ(c.ask({{"op", "export_buffer"}, {"token", kAlice}, {"buffer", id}}, one).body["error"]["field"], "fd");
  // After all that, the connection still works.
  EXPECT_EQ(c.ask({{"op", "export_buffer"}, {"token", kAlice}, {"buffer", id}}).code(), "");
  EXPECT_EQ(gpu_.buffers(), 1u);  // nothing was imported by the refused requests
  // Each answer is counted by op and code (an op kilnd does not know counts as "unknown").
  const std::string metrics = core_->metrics_text();
  EXPECT_NE(metrics.find("kiln_ipc_requests_total{op=\"export_buffer\",code=\"ok\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("kiln_ipc_requests_total{op=\"export_buffer\",code=\"not_found\"} 1"), std::string::npos);
  EXPECT_NE(metrics.find("kiln_ipc_requests_total{op=\"import_buffer\",code=\"bad_request\"} 7"), std::string::npos);
  EXPECT_NE(metrics.find("kiln_ipc_requests_total{op=\"unknown\",code=\"bad_request\"} 3"), std::string::npos);
}

TEST_F(IpcSocketTest, RefusedUnlessAllowClientIpc) {
  start(false);
  const std::uint64_t id = create_buffer("alice", 4096);
  Client c(path_);
  const Client::Reply r = c.ask({{"op", "export_buffer"}, {"token", kAlice}, {"buffer", id}});
  EXPECT_EQ(r.code(), "forbidden");
  EXPECT_TRUE(r.fds.empty());
  EXPECT_NE(r.body["error"]["hint"].get<std::string>().find("allow_client_ipc"), std::string::npos);
  ClientMemory memory(4096, 1);
  const int fds[] = {memory.fd.get()};
  EXPECT_EQ(c.ask({{"op", "import_buffer"}, {"token", kAlice}, {"bytes", 4096}}, fds).code(), "forbidden");
}

// The registering process is the socket's peer: when it ends, kilnd frees what it imported.
TEST_F(IpcSocketTest, ABufferIsFreedWhenTheProcessThatImportedItEnds) {
  start();
  // A client in Python (its standard library passes descriptors): imports a memfd and exits.
  const std::string script = R"(
import json, os, socket, struct, sys
fd = os.memfd_create("client")
os.ftruncate(fd, 4096)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
body = json.dumps({"op": "import_buffer", "token": sys.argv[2], "bytes": 4096}).encode()
socket.send_fds(s, [struct.pack("<IQ", 1, len(body)) + body], [fd])
header = s.recv(12, socket.MSG_WAITALL)
kind, size = struct.unpack("<IQ", header)
reply = b""
while len(reply) < size:
    reply += s.recv(size - len(reply))
print(json.loads(reply)["buffer"]["id"])
)";
  std::ofstream(dir_.path() / "client.py") << script;
  testing::Child child({"/usr/bin/python3", (dir_.path() / "client.py").string(), path_, kAlice});
  std::string out;
  const std::string id_text = child.wait_for(std::regex("^([0-9]+)$"), out);
  ASSERT_FALSE(id_text.empty()) << out;
  const std::uint64_t id = std::stoull(id_text);
  while (child.line()) {
  }
  EXPECT_EQ(child.terminate(), 0);  // its output ended: it has exited (or is exiting, past signals); reaped here
  // The server's loop sweeps at least once a second; the test asks the core itself rather than
  // waiting on that clock.
  EXPECT_EQ(core_->sweep_client_buffers(), 1u);
  EXPECT_EQ(core_->buffer("alice", id).error().kind, core::ErrorKind::not_found);
  EXPECT_EQ(gpu_.buffers(), 0u);
  EXPECT_EQ(core_->sweep_client_buffers(), 0u);
}

// A client that sends half a frame and stops, one that sends an oversized header and one that
// sends the wrong frame type hold up nobody: another client is answered at once, and the
// oversized and mistyped ones are disconnected.
TEST_F(IpcSocketTest, BrokenClientsStallNoOne) {
  start();
  ipc::UniqueFd half = connect_to(path_);
  ASSERT_TRUE(half);
  const std::uint32_t type = IpcSocketServer::kRequestFrame;
  const std::uint64_t length = 100;
  std::string header(12, '\0');
  std::memcpy(header.data(), &type, 4);
  std::memcpy(header.data() + 4, &length, 8);
  ASSERT_EQ(::send(half.get(), header.data(), 12, MSG_NOSIGNAL), 12);  // then nothing
  Client other(path_);
  EXPECT_EQ(other.ask({{"op", "hello"}}).body["protocol"], IpcSocketServer::kProtocolVersion);

  auto expect_disconnected = [](const ipc::UniqueFd& fd) {
    pollfd p{fd.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 20000), 1);
    char byte;
    // kilnd closed it: end of file, or a reset where it left bytes of the frame unread.
    const ssize_t n = ::recv(fd.get(), &byte, 1, 0);
    EXPECT_TRUE(n == 0 || (n < 0 && errno == ECONNRESET)) << n << " " << std::strerror(errno);
  };
  ipc::UniqueFd oversized = connect_to(path_);
  const std::uint64_t huge = IpcSocketServer::kMaxFrameBytes + 1;
  std::memcpy(header.data() + 4, &huge, 8);
  ASSERT_EQ(::send(oversized.get(), header.data(), 12, MSG_NOSIGNAL), 12);
  expect_disconnected(oversized);
  ipc::UniqueFd mistyped = connect_to(path_);
  const std::uint32_t reply_type = IpcSocketServer::kReplyFrame;
  const std::uint64_t two = 2;
  std::memcpy(header.data(), &reply_type, 4);
  std::memcpy(header.data() + 4, &two, 8);
  ASSERT_EQ(::send(mistyped.get(), (header + "{}").data(), 14, MSG_NOSIGNAL), 14);
  expect_disconnected(mistyped);
  EXPECT_EQ(other.ask({{"op", "hello"}}).body["protocol"], IpcSocketServer::kProtocolVersion);
}

TEST_F(IpcSocketTest, ConnectionsAboveTheLimitAreToldSo) {
  start();
  std::vector<Client> clients;
  for (std::size_t i = 0; i < IpcSocketServer::kMaxConnections; ++i) {
    clients.emplace_back(path_);
    ASSERT_EQ(clients.back().ask({{"op", "hello"}}).code(), "");  // each is being served
  }
  ipc::UniqueFd extra = connect_to(path_);
  ASSERT_TRUE(extra);
  ipc::ChannelOptions options;
  options.peer = "kilnd";
  ipc::Channel channel(std::move(extra), options);
  ipc::Received r = channel.receive_for(std::chrono::seconds(30));
  ASSERT_TRUE(r);
  EXPECT_EQ(json::parse(r.frame.payload)["error"]["code"], "too_many_connections");
  EXPECT_EQ(channel.receive_for(std::chrono::seconds(30)).status, ipc::ReceiveStatus::closed);
  clients.pop_back();  // one leaves: a new one is served (once the server has seen it go)
  bool served = false;
  for (int attempt = 0; attempt < 100 && !served; ++attempt) {
    Client again(path_);
    served = again.ask({{"op", "hello"}}).code() == "";
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(served);
}

TEST_F(IpcSocketTest, TheSocketFileIsReplacedWhenStaleAndRefusedWhenLiveOrNotASocket) {
  start();
  // A second server on the same path: refused, the first one serves on.
  auto refusal_of = [](IpcSocketServer& server) -> std::string {
    try {
      server.start();
    } catch (const Error& e) {
      return e.what();
    }
    return "started";
  };
  IpcSocketServer second(*core_, tokens_, path_, Log{});
  EXPECT_NE(refusal_of(second).find("another process serves on it"), std::string::npos);
  EXPECT_EQ(Client(path_).ask({{"op", "hello"}}).code(), "");
  // stop() removes the file and disconnects clients.
  Client connected(path_);
  server_->stop();
  EXPECT_FALSE(std::filesystem::exists(path_));
  EXPECT_EQ(connected.channel().receive_for(std::chrono::seconds(30)).status, ipc::ReceiveStatus::closed);
  // A stale socket (bound, nobody listening) is replaced.
  {
    ipc::UniqueFd stale(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path_.data(), path_.size());
    ASSERT_EQ(::bind(stale.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a), 0);
  }
  server_ = std::make_unique<IpcSocketServer>(*core_, tokens_, path_, Log{});
  server_->start();
  EXPECT_EQ(Client(path_).ask({{"op", "hello"}}).code(), "");
  server_->stop();
  // A regular file is not kilnd's to replace.
  std::ofstream(path_) << "keep me";
  server_ = std::make_unique<IpcSocketServer>(*core_, tokens_, path_, Log{});
  EXPECT_NE(refusal_of(*server_).find("exists and is not a socket"), std::string::npos);
  EXPECT_TRUE(std::filesystem::is_regular_file(path_));
  // A path longer than a Unix socket address holds: refused, saying how long one may be.
  IpcSocketServer long_path(*core_, tokens_, "/tmp/" + std::string(200, 'k'), Log{});
  EXPECT_NE(refusal_of(long_path).find("must have 1 to 107 characters"), std::string::npos);
}

}  // namespace
}  // namespace kiln::service
