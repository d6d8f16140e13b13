// The supervisor/GPU worker protocol on ipc::Channel over real Unix sockets, descriptor passing
// included, the GPU worker itself on a machine without a GPU (in this process and as the real
// kiln-worker binary), and a WorkerPool refusing to start without a driver. The framing itself is
// tested in tests/ipc.
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/ipc/socket_pair.hpp"
#include "kiln/ipc/spawn.hpp"
#include "kiln/service/gpu_worker.hpp"
#include "kiln/service/gpu_worker_protocol.hpp"
#include "kiln/service/worker_pool.hpp"
#include "support/error_message.hpp"

namespace {

using namespace kiln::service;
using namespace std::chrono_literals;
using kiln::ipc::Channel;
using kiln::ipc::Received;

std::pair<Channel, Channel> gpu_worker_pair() {
  return Channel::pair(gpu_worker_channel("the GPU worker"), gpu_worker_channel("the supervisor"));
}

TEST(GpuWorkerProtocol, FramesAndPayloadsRoundTrip) {
  auto [a, b] = gpu_worker_pair();
  a.send(GpuWorkerFrame::ready, PayloadWriter().bytes("NVIDIA H100").u32(7).u64(1ull << 40).f64(2.5).u8(9).take());
  Received f = b.receive();
  ASSERT_TRUE(f);
  EXPECT_EQ(f.frame.type_as<GpuWorkerFrame>(), GpuWorkerFrame::ready);
  EXPECT_TRUE(f.frame.fds.empty());
  PayloadReader r(f.frame.payload);
  EXPECT_EQ(r.bytes(), "NVIDIA H100");
  EXPECT_EQ(r.u32(), 7u);
  EXPECT_EQ(r.u64(), 1ull << 40);
  EXPECT_EQ(r.f64(), 2.5);
  EXPECT_EQ(r.u8(), 9u);
  EXPECT_TRUE(r.done());
}

TEST(GpuWorkerProtocol, LargeLaunchFramesArriveWhole) {
  auto [a, b] = gpu_worker_pair();
  std::string big(12u << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31);
  std::thread sender([&a = a, &big] { a.send(GpuWorkerFrame::launch, big); });
  Received f = b.receive();
  sender.join();
  EXPECT_EQ(f.frame.payload, big);
}

TEST(GpuWorkerProtocol, BufferDescriptorTravelsWithItsImportFrame) {
  auto [a, b] = gpu_worker_pair();
  kiln::ipc::UniqueFd memfd(::memfd_create("kiln-test", MFD_CLOEXEC));
  ASSERT_TRUE(memfd);
  ASSERT_EQ(::write(memfd.get(), "shared bytes", 12), 12);
  const int fds[] = {memfd.get()};
  a.send(GpuWorkerFrame::import_buffer, PayloadWriter().u64(5).u64(12).take(), fds);
  memfd.reset();  // the receiver has its own descriptor now
  Received f = b.receive();
  ASSERT_EQ(f.frame.fds.size(), 1u);
  char buf[13] = {};
  ASSERT_EQ(::pread(f.frame.fds[0].get(), buf, 12, 0), 12);
  EXPECT_STREQ(buf, "shared bytes");
}

TEST(GpuWorkerProtocol, LimitsTypesTimeoutsAndPeerGone) {
  auto [a, b] = gpu_worker_pair();
  EXPECT_EQ(b.receive_for(20ms).status, kiln::ipc::ReceiveStatus::timed_out);
  // A header announcing more than the GPU worker's limit, read from a raw peer.
  char header[12];
  const std::uint32_t type = 4;
  const std::uint64_t huge = kMaxGpuWorkerFrameBytes + 1;
  std::memcpy(header, &type, 4);
  std::memcpy(header + 4, &huge, 8);
  ASSERT_EQ(::write(a.fd(), header, sizeof header), ssize_t(sizeof header));
  try {
    b.receive();
    FAIL();
  } catch (const kiln::ipc::ChannelError& e) {
    EXPECT_EQ(e.failure(), kiln::ipc::ChannelError::Failure::oversized) << e.what();
    EXPECT_NE(std::string(e.what()).find("ipc channel to the supervisor: the peer announced a frame of 268435457 bytes"), std::string::npos) << e.what();
  }
  auto [c, d] = gpu_worker_pair();
  const std::uint32_t unknown = static_cast<std::uint32_t>(GpuWorkerFrame::forget_image) + 1;  // past the last type
  std::memcpy(header, &unknown, 4);
  std::memset(header + 4, 0, 8);
  ASSERT_EQ(::write(c.fd(), header, sizeof header), ssize_t(sizeof header));
  try {
    d.receive();
    FAIL();
  } catch (const kiln::ipc::ChannelError& e) {
    EXPECT_EQ(e.failure(), kiln::ipc::ChannelError::Failure::bad_type) << e.what();
  }
  auto [e, f] = gpu_worker_pair();
  e.close();  // the peer is gone
  EXPECT_EQ(f.receive().status, kiln::ipc::ReceiveStatus::closed);
  PayloadReader short_payload(std::string_view("\x01\x00", 2));
  EXPECT_THROW(short_payload.u32(), kiln::Error);
}

TEST(GpuWorkerProtocol, LaunchAndOutcomeEncodeBothWays) {
  LaunchSpec s;
  s.job_id = 42;
  s.tenant = "tenant-a";
  s.request_id = "req-7";
  s.image = std::make_shared<const std::string>("\x7f" "ELF cubin bytes");
  s.image_key = "abc123";
  s.kernel = "_Z4fillPfi";
  s.grid = {4, 2, 1};
  s.block = {128, 1, 1};
  s.shared_bytes = 1024;
  s.device = 0;
  s.arguments = {ScalarArgument{ScalarArgument::Type::f32, 0x40000000}, BufferArgument{7, 256},
                 ScalarArgument{ScalarArgument::Type::i64, 1ull << 33}};
  const std::string frame = encode_launch(s);
  EXPECT_EQ(frame.find("ELF cubin bytes"), std::string::npos) << "a launch names its image by key only";
  LaunchSpec d = decode_launch(frame);
  EXPECT_EQ(d.job_id, 42u);
  EXPECT_EQ(d.tenant, "tenant-a");
  EXPECT_EQ(d.request_id, "req-7");  // the worker names it in a failure's message
  EXPECT_EQ(d.image, nullptr);
  EXPECT_EQ(d.image_key, "abc123");
  EXPECT_EQ(d.kernel, s.kernel);
  EXPECT_EQ(d.grid, s.grid);
  EXPECT_EQ(d.block, s.block);
  EXPECT_EQ(d.shared_bytes, 1024u);
  ASSERT_EQ(d.arguments.size(), 3u);
  EXPECT_EQ(std::get<ScalarArgument>(d.arguments[0]).bits, 0x40000000u);
  EXPECT_EQ(std::get<ScalarArgument>(d.arguments[0]).size(), 4u);
  EXPECT_EQ(std::get<BufferArgument>(d.arguments[1]).buffer, 7u);
  EXPECT_EQ(std::get<BufferArgument>(d.arguments[1]).offset, 256u);
  EXPECT_EQ(std::get<ScalarArgument>(d.arguments[2]).size(), 8u);
  std::string truncated = encode_launch(s);
  truncated.pop_back();
  EXPECT_THROW(decode_launch(truncated), kiln::Error);

  LaunchOutcome o{42, LaunchStatus::failed, "CUDA_ERROR_ILLEGAL_ADDRESS", "explained", true, 3.5};
  LaunchOutcome p = decode_outcome(encode_outcome(o));
  EXPECT_EQ(p.status, LaunchStatus::failed);
  EXPECT_EQ(p.error_name, "CUDA_ERROR_ILLEGAL_ADDRESS");
  EXPECT_TRUE(p.sticky);
  EXPECT_EQ(p.elapsed_ms, 3.5);
  std::string bad_status = encode_outcome(o);
  bad_status[8] = 9;  // after the job id: a status no LaunchStatus has
  EXPECT_NE(kiln::testing::error_of([&] { decode_outcome(bad_status); }).detail().find("unknown launch status 9"),
            std::string::npos);
}

TEST(GpuWorkerProtocol, ImageFramesEncodeBothWaysAndTravelOnTheChannel) {
  const std::string image("\x7f" "ELF\0 cubin with a NUL", 22);
  auto [a, b] = gpu_worker_pair();
  a.send(GpuWorkerFrame::load_image, encode_load_image("key-1", image));
  a.send(GpuWorkerFrame::forget_image, encode_forget_image("key-0"));
  Received load = b.receive_for(5s), forget = b.receive_for(5s);
  ASSERT_TRUE(load);
  ASSERT_TRUE(forget);
  EXPECT_EQ(load.frame.type_as<GpuWorkerFrame>(), GpuWorkerFrame::load_image);
  const ImageFrame f = decode_load_image(load.frame.payload);
  EXPECT_EQ(f.key, "key-1");
  EXPECT_EQ(f.image, image);
  EXPECT_EQ(forget.frame.type_as<GpuWorkerFrame>(), GpuWorkerFrame::forget_image);
  EXPECT_EQ(decode_forget_image(forget.frame.payload), "key-0");

  using kiln::testing::error_of;
  EXPECT_NE(error_of([] { decode_load_image(encode_load_image("", "bytes")); }).detail().find("needs a key and bytes"),
            std::string::npos);
  EXPECT_NE(error_of([] { decode_load_image(encode_load_image("k", "")); }).detail().find("needs a key and bytes"),
            std::string::npos);
  EXPECT_NE(error_of([] { decode_load_image(encode_load_image("k", "b") + "x"); }).detail().find("trailing bytes"),
            std::string::npos);
  std::string cut = encode_load_image("k", image);
  cut.pop_back();
  EXPECT_NE(error_of([&] { decode_load_image(cut); }).detail().find("ends 1 bytes early"), std::string::npos);
  EXPECT_NE(error_of([] { decode_forget_image(encode_forget_image("k") + "x"); }).detail().find("trailing bytes"),
            std::string::npos);
}

void expect_driver_not_found_report(const Received& f) {
  ASSERT_TRUE(f);
  ASSERT_EQ(f.frame.type_as<GpuWorkerFrame>(), GpuWorkerFrame::error);
  PayloadReader r(f.frame.payload);
  EXPECT_EQ(r.bytes(), "KILN_ERROR_DRIVER_NOT_FOUND");
  EXPECT_NE(r.bytes().find("libcuda.so.1"), std::string::npos);
}

TEST(GpuWorkerNoDriver, WorkerReportsWhyAndPoolRefuses) {
  if (kiln::driver::driver_state().api) GTEST_SKIP() << "a driver is installed here";
  // The GPU worker, run in this process on a thread (the same code the kiln-worker binary runs).
  auto [supervisor, worker] = gpu_worker_pair();
  std::thread t([w = std::move(worker)]() mutable { EXPECT_EQ(serve_gpu_worker(std::move(w), 0), 1); });
  const Received f = supervisor.receive();
  t.join();
  expect_driver_not_found_report(f);
  try {
    WorkerPool pool;
    FAIL() << "a worker pool started without a driver";
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(kiln::Errc::driver_not_found)) << e.what();
  }
}

TEST(GpuWorkerNoDriver, ConcurrentWorkerReportsWhyToo) {
  if (kiln::driver::driver_state().api) GTEST_SKIP() << "a driver is installed here";
  auto [supervisor, worker] = gpu_worker_pair();
  std::thread t([w = std::move(worker)]() mutable { EXPECT_EQ(serve_gpu_worker(std::move(w), 0, 4), 1); });
  const Received f = supervisor.receive();
  t.join();
  expect_driver_not_found_report(f);
  EXPECT_EQ(supervisor.receive_for(5s).status, kiln::ipc::ReceiveStatus::closed);
}

TEST(GpuWorkerNoDriver, TheKilnWorkerBinaryReportsWhyOverFdThree) {
  if (kiln::driver::driver_state().api) GTEST_SKIP() << "a driver is installed here";
  if (!std::filesystem::exists(KILN_WORKER_BINARY)) GTEST_SKIP() << "kiln-worker is not built (KILN_BUILD_TOOLS=OFF)";
  // The real binary, started as WorkerPool starts it: its socket at fd 3.
  kiln::ipc::SocketPair sockets = kiln::ipc::SocketPair::create();
  kiln::ipc::SpawnOptions o;
  o.program = KILN_WORKER_BINARY;
  o.arguments = {"--socket", "3", "--device", "0"};
  o.fds = {{3, sockets.second.get()}};
  kiln::ipc::ChildProcess worker = kiln::ipc::spawn(o);
  sockets.second.reset();
  Channel supervisor(std::move(sockets.first), gpu_worker_channel("kiln-worker"));
  expect_driver_not_found_report(supervisor.receive_for(60s));
  EXPECT_EQ(supervisor.receive_for(60s).status, kiln::ipc::ReceiveStatus::closed);
  const auto status = worker.wait_for(60s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->exit_code(), 1) << status->describe();
}

TEST(GpuWorkerBinary, RefusesALaneCountOutsideOneTo256) {
  if (!std::filesystem::exists(KILN_WORKER_BINARY)) GTEST_SKIP() << "kiln-worker is not built (KILN_BUILD_TOOLS=OFF)";
  for (const char* lanes : {"0", "257"}) {
    kiln::ipc::SpawnOptions o;
    o.program = KILN_WORKER_BINARY;
    o.arguments = {"--socket", "3", "--device", "0", "--lanes", lanes};
    kiln::ipc::ChildProcess worker = kiln::ipc::spawn(o);
    const auto status = worker.wait_for(60s);
    ASSERT_TRUE(status);
    EXPECT_EQ(status->exit_code(), 2) << lanes << ": " << status->describe();
  }
}

}  // namespace
