// The supervisor/worker protocol over real Unix sockets, descriptor passing included, and the
// worker process itself on a machine without a GPU.
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/service/worker.hpp"
#include "kiln/service/worker_pool.hpp"
#include "kiln/service/worker_protocol.hpp"

namespace {

using namespace kiln::service;
using namespace std::chrono_literals;

TEST(WorkerProtocol, FramesRoundTrip) {
  auto [a, b] = Channel::pair();
  a.send(FrameType::ready, FrameWriter().bytes("NVIDIA H100").u32(7).u64(1ull << 40).f64(2.5).u8(9).take());
  Frame f = b.receive();
  EXPECT_EQ(f.type, FrameType::ready);
  EXPECT_EQ(f.fd, -1);
  FrameReader r(f.payload);
  EXPECT_EQ(r.bytes(), "NVIDIA H100");
  EXPECT_EQ(r.u32(), 7u);
  EXPECT_EQ(r.u64(), 1ull << 40);
  EXPECT_EQ(r.f64(), 2.5);
  EXPECT_EQ(r.u8(), 9u);
  EXPECT_TRUE(r.done());
}

TEST(WorkerProtocol, LargeFramesArriveWhole) {
  auto [a, b] = Channel::pair();
  std::string big(12u << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31);
  std::thread sender([&a = a, &big] { a.send(FrameType::launch, big); });
  Frame f = b.receive();
  sender.join();
  EXPECT_EQ(f.payload, big);
}

TEST(WorkerProtocol, DescriptorTravelsWithTheFrame) {
  auto [a, b] = Channel::pair();
  int memfd = ::memfd_create("kiln-test", 0);
  ASSERT_GE(memfd, 0);
  ASSERT_EQ(::write(memfd, "shared bytes", 12), 12);
  a.send(FrameType::import_buffer, FrameWriter().u64(5).u64(12).take(), memfd);
  ::close(memfd);  // the receiver has its own descriptor now
  Frame f = b.receive();
  ASSERT_GE(f.fd, 0);
  char buf[13] = {};
  ASSERT_EQ(::pread(f.fd, buf, 12, 0), 12);
  EXPECT_STREQ(buf, "shared bytes");
  ::close(f.fd);
}

TEST(WorkerProtocol, TimeoutPeerGoneAndBadFrames) {
  auto [a, b] = Channel::pair();
  EXPECT_FALSE(b.receive(20ms).has_value());
  // A header announcing more than the limit.
  const std::uint32_t huge = Channel::kMaxPayload + 1;
  char header[5];
  std::memcpy(header, &huge, 4);
  header[4] = 1;
  ASSERT_EQ(::write(a.fd(), header, 5), 5);
  try {
    b.receive();
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_NE(std::string(e.what()).find("larger than the limit"), std::string::npos) << e.what();
  }
  a = Channel();  // closes: the peer is gone
  try {
    b.receive();
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_NE(std::string(e.what()).find("closed the connection"), std::string::npos) << e.what();
  }
  FrameReader short_frame(std::string_view("\x01\x00", 2));
  EXPECT_THROW(short_frame.u32(), kiln::Error);
}

TEST(WorkerProtocol, LaunchAndOutcomeEncodeBothWays) {
  LaunchSpec s;
  s.job_id = 42;
  s.tenant = "tenant-a";
  s.image = std::make_shared<const std::string>("\x7f" "ELF cubin bytes");
  s.image_key = "abc123";
  s.kernel = "_Z4fillPfi";
  s.grid = {4, 2, 1};
  s.block = {128, 1, 1};
  s.shared_bytes = 1024;
  s.device = 0;
  s.arguments = {ScalarArgument{ScalarArgument::Type::f32, 0x40000000}, BufferArgument{7, 256},
                 ScalarArgument{ScalarArgument::Type::i64, 1ull << 33}};
  LaunchSpec d = decode_launch(encode_launch(s));
  EXPECT_EQ(d.job_id, 42u);
  EXPECT_EQ(d.tenant, "tenant-a");
  EXPECT_EQ(*d.image, *s.image);
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
}

TEST(WorkerNoDriver, WorkerReportsWhyAndPoolRefuses) {
  if (kiln::driver::driver_state().api) GTEST_SKIP() << "a driver is installed here";
  // The worker, run in this process on a thread (the same code the kiln-worker binary runs).
  auto [supervisor, worker] = Channel::pair();
  std::thread t([w = std::move(worker)]() mutable { EXPECT_EQ(run_worker(std::move(w), 0), 1); });
  Frame f = supervisor.receive();
  t.join();
  ASSERT_EQ(f.type, FrameType::error);
  FrameReader r(f.payload);
  EXPECT_EQ(r.bytes(), "KILN_ERROR_DRIVER_NOT_FOUND");
  EXPECT_NE(r.bytes().find("libcuda.so.1"), std::string::npos);
  try {
    WorkerPool pool;
    FAIL() << "a worker pool started without a driver";
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(kiln::Errc::driver_not_found)) << e.what();
  }
}

}  // namespace
