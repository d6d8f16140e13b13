// Channel over real Unix sockets: frames round trip with and without descriptors (a pipe's end
// passed and written through), large frames arrive whole, and every way a peer can break the
// stream is reported as a ChannelError naming the peer: EOF in the middle of a frame, an announced
// length above the limit (refused without allocating it), a type the channel does not accept,
// garbage; a silent peer is a timeout at the deadline; a vanished one is `closed`, never SIGPIPE.
#include <gtest/gtest.h>

#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <random>
#include <thread>

#include "ipc_test_support.hpp"
#include "kiln/ipc/channel.hpp"
#include "kiln/ipc/pipe.hpp"
#include "kiln/ipc/socket_pair.hpp"
#include "kiln/ipc/spawn.hpp"

namespace {

using namespace kiln::ipc;
using namespace kiln::ipc::testing;
using namespace std::chrono_literals;
using Failure = ChannelError::Failure;

ChannelOptions named(std::string peer, std::uint64_t max = 1u << 20) {
  ChannelOptions o;
  o.peer = std::move(peer);
  o.max_frame_bytes = max;
  o.first_type = 1;
  o.last_type = 9;
  return o;
}

// A channel and the raw socket of its peer, to write exactly the bytes a test needs.
struct RawPeer {
  Channel channel;
  UniqueFd raw;
  RawPeer() {
    SocketPair p = SocketPair::create();
    channel = Channel(std::move(p.first), named("test peer 'raw'"));
    raw = std::move(p.second);
  }
  void write(std::string_view bytes) const { ASSERT_EQ(::write(raw.get(), bytes.data(), bytes.size()), ssize_t(bytes.size())); }
  void header(std::uint32_t type, std::uint64_t length) const {
    char h[12];
    std::memcpy(h, &type, 4);
    std::memcpy(h + 4, &length, 8);
    write(std::string_view(h, 12));
  }
};

ChannelError channel_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const ChannelError& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a ChannelError: " << e.what();
  }
  ADD_FAILURE() << "nothing thrown";
  return ChannelError(Failure::system, kiln::Errc::internal, "nothing thrown");
}

TEST(Channel, FramesRoundTripBothWays) {
  auto [a, b] = Channel::pair(named("b"), named("a"));
  a.send(3, "hello");
  a.send(4, "");
  b.send(9, std::string("\0\1\2", 3));
  Received r = b.receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r.frame.type, 3u);
  EXPECT_EQ(r.frame.payload, "hello");
  EXPECT_TRUE(r.frame.fds.empty());
  r = b.receive_for(1s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r.frame.type, 4u);
  EXPECT_EQ(r.frame.payload, "");
  r = a.receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r.frame.payload, std::string("\0\1\2", 3));
  enum class Kind : std::uint32_t { five = 5 };
  a.send(Kind::five, "typed");
  EXPECT_EQ(b.receive().frame.type_as<Kind>(), Kind::five);
}

TEST(Channel, LargeFramesArriveWhole) {
  auto [a, b] = Channel::pair(named("b", 64u << 20), named("a", 64u << 20));
  std::string big(24u << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 + (i >> 12));
  std::thread sender([&a = a, &big] { a.send(2, big); });  // far beyond the socket's buffer
  const Received r = b.receive();
  sender.join();
  ASSERT_TRUE(r);
  EXPECT_EQ(r.frame.payload, big);
}

TEST(Channel, DescriptorsTravelWithTheFrame) {
  auto [a, b] = Channel::pair(named("b"), named("a"));
  Pipe pipe = Pipe::create();
  const int memfd = ::memfd_create("kiln-ipc-test", MFD_CLOEXEC);
  ASSERT_GE(memfd, 0);
  UniqueFd mem(memfd);
  ASSERT_EQ(::write(memfd, "shared bytes", 12), 12);
  const int fds[] = {pipe.write.get(), memfd};
  a.send(5, "two descriptors", fds);
  pipe.write.reset();  // the receiver holds its own copies now
  mem.reset();
  Received r = b.receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r.frame.payload, "two descriptors");
  ASSERT_EQ(r.frame.fds.size(), 2u);
  for (const UniqueFd& fd : r.frame.fds) EXPECT_TRUE(::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC);
  // Write through the pipe end that came over the socket; read it at the original read end.
  ASSERT_EQ(::write(r.frame.fds[0].get(), "via SCM_RIGHTS", 14), 14);
  r.frame.fds[0].reset();
  EXPECT_EQ(read_all(pipe.read), "via SCM_RIGHTS");
  char buf[13] = {};
  ASSERT_EQ(::pread(r.frame.fds[1].get(), buf, 12, 0), 12);
  EXPECT_STREQ(buf, "shared bytes");

  // With an empty payload too, and the next frame carries none.
  const int one[] = {r.frame.fds[1].get()};
  a.send(6, "", one);
  a.send(7, "plain");
  Received with = b.receive(), without = b.receive();
  EXPECT_EQ(with.frame.fds.size(), 1u);
  EXPECT_TRUE(without.frame.fds.empty());
  EXPECT_EQ(without.frame.payload, "plain");
}

TEST(Channel, TooManyDescriptorsAreRefusedBySender) {
  auto [a, b] = Channel::pair(named("b"), named("a"));
  std::vector<int> fds(kMaxFdsPerFrame + 1, 0);
  const ChannelError e = channel_error([&] { a.send(1, "x", fds); });
  EXPECT_EQ(e.failure(), Failure::too_many_fds);
}

TEST(Channel, CleanEndOfFileBetweenFramesIsClosed) {
  auto [a, b] = Channel::pair(named("b"), named("a"));
  a.send(1, "last words");
  a.close();
  Received r = b.receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r.frame.payload, "last words");
  r = b.receive_for(30s);
  EXPECT_EQ(r.status, ReceiveStatus::closed);
  EXPECT_EQ(b.receive().status, ReceiveStatus::closed);  // and stays so
}

TEST(Channel, EndOfFileInTheMiddleOfAFrameThrowsNamingThePeer) {
  {
    RawPeer p;
    p.write(std::string("\x01\x00\x00", 3));  // 3 of 12 header bytes
    p.raw.reset();
    const ChannelError e = channel_error([&] { p.channel.receive(); });
    EXPECT_EQ(e.failure(), Failure::truncated);
    EXPECT_TRUE(contains(e.detail(), "ipc channel to test peer 'raw': the peer closed the connection in the middle "
                                     "of a frame header (3 bytes of 12 bytes read)"))
        << e.what();
  }
  {
    RawPeer p;
    p.header(2, 100);
    p.write("only forty bytes of the hundred announced.");
    p.raw.reset();
    const ChannelError e = channel_error([&] { p.channel.receive(); });
    EXPECT_EQ(e.failure(), Failure::truncated);
    EXPECT_TRUE(contains(e.detail(), "in the middle of a frame of type 2 (42 bytes of 100 bytes read)")) << e.what();
    // The stream is out of step from now on.
    const ChannelError again = channel_error([&] { p.channel.receive(); });
    EXPECT_EQ(again.failure(), Failure::out_of_step);
    EXPECT_TRUE(contains(again.detail(), "out of step")) << again.what();
  }
}

TEST(Channel, OversizedLengthIsRefusedWithoutAllocating) {
  RawPeer p;
  // 2^62 bytes: an allocation would throw bad_alloc (or take the machine down); the header alone
  // must be enough to refuse it.
  p.header(1, 1ull << 62);
  ChannelError e = channel_error([&] { p.channel.receive(); });
  EXPECT_EQ(e.failure(), Failure::oversized);
  EXPECT_TRUE(contains(e.detail(), "test peer 'raw'")) << e.what();
  EXPECT_TRUE(contains(e.detail(), "announced a frame of 4611686018427387904 bytes (type 1), above this "
                                   "channel's limit of 1048576 bytes; refused unread"))
      << e.what();

  // Exactly the limit passes; one byte more does not, and the sender refuses it first.
  auto [a, b] = Channel::pair(named("b", 1000), named("a", 1000));
  a.send(1, std::string(1000, 'x'));
  EXPECT_EQ(b.receive().frame.payload.size(), 1000u);
  e = channel_error([&a = a] { a.send(1, std::string(1001, 'x')); });
  EXPECT_EQ(e.failure(), Failure::oversized);
  EXPECT_TRUE(contains(e.detail(), "nothing was sent")) << e.what();
  a.send(2, "still usable");
  EXPECT_EQ(b.receive().frame.payload, "still usable");
}

TEST(Channel, TypesOutsideTheAcceptedRangeAreRefused) {
  RawPeer p;
  p.header(10, 0);
  const ChannelError e = channel_error([&] { p.channel.receive(); });
  EXPECT_EQ(e.failure(), Failure::bad_type);
  EXPECT_TRUE(contains(e.detail(), "sent frame type 10, which this channel does not accept (1-9)")) << e.what();
}

TEST(Channel, GarbageBytesAreRefusedNotTrusted) {
  std::mt19937_64 random(12345);
  for (int round = 0; round < 50; ++round) {
    RawPeer p;
    std::string garbage(64, '\0');
    for (char& c : garbage) c = static_cast<char>(random());
    p.write(garbage);
    p.raw.reset();
    // Whatever the bytes say, the answer is a frame, `closed`, or a ChannelError: never a crash,
    // a hang or a huge allocation.
    try {
      for (int i = 0; i < 8; ++i)
        if (p.channel.receive_for(10s).status != ReceiveStatus::frame) break;
    } catch (const ChannelError& e) {
      EXPECT_TRUE(e.failure() == Failure::bad_type || e.failure() == Failure::oversized ||
                  e.failure() == Failure::truncated)
          << e.what();
    }
  }
  RawPeer text;  // a program that prints text where a frame belongs
  text.write("not a kiln worker at all");
  const ChannelError e = channel_error([&] { text.channel.receive_for(10s); });
  EXPECT_EQ(e.failure(), Failure::bad_type) << e.what();
}

TEST(Channel, SilentPeerTimesOutAtTheDeadline) {
  auto [a, b] = Channel::pair(named("b"), named("a"));
  const auto start = std::chrono::steady_clock::now();
  const Received r = b.receive_for(150ms);
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status, ReceiveStatus::timed_out);
  EXPECT_GE(waited, 150ms);  // never early
  EXPECT_LT(waited, 30s);    // failure-only bound: a busy machine may be late, not this late
  EXPECT_EQ(b.receive_for(0ms).status, ReceiveStatus::timed_out);
  // A frame sent after a timeout between frames is received normally.
  a.send(1, "late");
  EXPECT_EQ(b.receive_for(30s).frame.payload, "late");
}

// A receiver that polls before sleeping (ChannelOptions::spin) gets frames that come while it
// polls and after it has gone to sleep, and its deadline holds while it polls.
TEST(Channel, PollingReceiverGetsFramesDuringAndAfterThePollAndKeepsItsDeadline) {
  ChannelOptions polling = named("a");
  polling.spin = 20ms;
  auto [a, b] = Channel::pair(named("b"), polling);
  std::thread sender([&a] {
    a.send(1, "first");                  // most likely while b polls
    std::this_thread::sleep_for(100ms);  // past b's poll: b is asleep in poll()
    a.send(2, "second");
  });
  EXPECT_EQ(b.receive_for(30s).frame.payload, "first");
  EXPECT_EQ(b.receive_for(30s).frame.payload, "second");
  sender.join();

  ChannelOptions long_poll = named("a");
  long_poll.spin = std::chrono::hours(1);
  auto [c, d] = Channel::pair(named("d"), long_poll);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(d.receive_for(50ms).status, ReceiveStatus::timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30min);  // the deadline, not the hour of polling
  c.send(3, "after");
  EXPECT_EQ(d.receive_for(30s).frame.payload, "after");
}

TEST(Channel, DeadlineInTheMiddleOfAFrameLeavesTheChannelOutOfStep) {
  RawPeer p;
  p.header(1, 10);
  p.write("abc");
  const Received r = p.channel.receive_for(100ms);
  EXPECT_EQ(r.status, ReceiveStatus::timed_out);
  const ChannelError e = channel_error([&] { p.channel.receive_for(100ms); });
  EXPECT_EQ(e.failure(), Failure::out_of_step);
  EXPECT_TRUE(contains(e.detail(), "deadline passed in the middle of a frame of type 1 (3 bytes of 10 bytes read)"))
      << e.what();
}

TEST(Channel, SendToAVanishedPeerIsClosedNotSigpipe) {
  // SIGPIPE keeps its default action here (ending the process): only MSG_NOSIGNAL saves the test.
  struct sigaction current {};
  ASSERT_EQ(::sigaction(SIGPIPE, nullptr, &current), 0);
  ASSERT_EQ(current.sa_handler, SIG_DFL);
  auto [a, b] = Channel::pair(named("the vanished peer"), named("a"));
  b.close();
  const ChannelError e = channel_error([&a = a] {
    for (int i = 0; i < 4; ++i) a.send(1, std::string(4096, 'x'));
  });
  EXPECT_EQ(e.failure(), Failure::closed);
  EXPECT_TRUE(contains(e.detail(), "ipc channel to the vanished peer: the peer closed the connection")) << e.what();
}

TEST(Channel, InterruptedBySignalsStillDeliversTheFrame) {
  // A handler without SA_RESTART: poll and recvmsg return EINTR, which must be retried.
  struct sigaction action {}, previous {};
  action.sa_handler = [](int) {};
  ASSERT_EQ(::sigaction(SIGUSR1, &action, &previous), 0);
  auto [a, b] = Channel::pair(named("b"), named("a"));
  const pthread_t receiver = ::pthread_self();
  std::atomic<bool> done{false};
  std::thread interrupter([&] {
    for (int i = 0; i < 40 && !done; ++i) {
      ::pthread_kill(receiver, SIGUSR1);
      std::this_thread::sleep_for(5ms);
    }
  });
  std::thread sender([&a = a] {
    std::this_thread::sleep_for(150ms);
    a.send(1, std::string(1u << 20, 'q'));
  });
  const Received r = b.receive_for(30s);
  done = true;
  interrupter.join();
  sender.join();
  ::sigaction(SIGUSR1, &previous, nullptr);
  ASSERT_TRUE(r);
  EXPECT_EQ(r.frame.payload, std::string(1u << 20, 'q'));
}

TEST(Channel, MovedFromOrClosedChannelRefusesUse) {
  auto [a, b] = Channel::pair();
  Channel moved = std::move(a);
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(channel_error([&a = a] { a.send(1, "x"); }).failure(), Failure::no_socket);
  Channel& alias = moved;
  moved = std::move(alias);  // self-move keeps the socket
  EXPECT_TRUE(moved.valid());
  moved.send(1, "x");
  EXPECT_EQ(b.receive().frame.payload, "x");
  moved.close();
  EXPECT_EQ(channel_error([&] { moved.receive(); }).failure(), Failure::no_socket);
}

TEST(Channel, WorksWithAChildProcessAtFdThree) {
  // The shape of every kiln child: one end of a socket pair at fd 3 of a spawned program.
  SocketPair pair = SocketPair::create();
  SpawnOptions o;
  o.program = "/bin/sh";
  // The shell writes one frame by hand: type 2, length 5, "hello"; then waits for us to close.
  o.arguments = {"-c", "printf '\\002\\000\\000\\000\\005\\000\\000\\000\\000\\000\\000\\000hello' >&3; cat <&3 >/dev/null"};
  o.fds = {{3, pair.second.get()}};
  ChildProcess child = spawn(o);
  pair.second.reset();
  Channel channel(std::move(pair.first), named("shell (pid " + std::to_string(child.pid()) + ")"));
  const Received r = channel.receive_for(30s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r.frame.type, 2u);
  EXPECT_EQ(r.frame.payload, "hello");
  channel.close();  // the child's cat reads end-of-file and the shell exits
  EXPECT_EQ(child.wait_for(30s).value_or(ExitStatus::unknown()), ExitStatus::exited_with(0));
}

}  // namespace
