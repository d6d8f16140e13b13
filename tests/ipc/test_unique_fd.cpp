// UniqueFd, Pipe and SocketPair: ownership in the type (move, self-move, release, reset), and a
// descriptor closed exactly once, never twice.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <type_traits>

#include "ipc_test_support.hpp"
#include "kiln/ipc/pipe.hpp"
#include "kiln/ipc/socket_pair.hpp"
#include "kiln/ipc/unique_fd.hpp"

namespace {

using namespace kiln::ipc;
using kiln::ipc::testing::fd_is_open;

static_assert(!std::is_copy_constructible_v<UniqueFd> && !std::is_copy_assignable_v<UniqueFd>,
              "two owners of one descriptor would close it twice");
static_assert(std::is_nothrow_move_constructible_v<UniqueFd> && std::is_nothrow_move_assignable_v<UniqueFd>);
static_assert(!std::is_convertible_v<int, UniqueFd>, "taking ownership of a number must be explicit");

int open_null() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

TEST(UniqueFd, ClosesOnDestruction) {
  int raw = -1;
  {
    UniqueFd fd(open_null());
    raw = fd.get();
    ASSERT_GE(raw, 0);
    EXPECT_TRUE(fd.valid());
    EXPECT_TRUE(fd_is_open(raw));
  }
  EXPECT_FALSE(fd_is_open(raw));
  UniqueFd empty;
  EXPECT_FALSE(empty);
  EXPECT_EQ(empty.get(), -1);
  EXPECT_EQ(UniqueFd(-7).get(), -1);  // any negative number is "none"
}

TEST(UniqueFd, MoveTransfersOwnershipAndEmptiesTheSource) {
  UniqueFd a(open_null());
  const int raw = a.get();
  UniqueFd b(std::move(a));
  EXPECT_EQ(a.get(), -1);  // NOLINT(bugprone-use-after-move): the moved-from state is specified
  EXPECT_EQ(b.get(), raw);
  UniqueFd c(open_null());
  const int other = c.get();
  c = std::move(b);  // c's old descriptor is closed, c owns raw
  EXPECT_FALSE(fd_is_open(other));
  EXPECT_EQ(c.get(), raw);
  EXPECT_EQ(b.get(), -1);  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(fd_is_open(raw));
}

TEST(UniqueFd, SelfMoveKeepsTheDescriptor) {
  UniqueFd a(open_null());
  const int raw = a.get();
  UniqueFd& alias = a;
  a = std::move(alias);
  EXPECT_EQ(a.get(), raw);
  EXPECT_TRUE(fd_is_open(raw));
}

TEST(UniqueFd, ReleaseHandsBackWithoutClosing) {
  UniqueFd a(open_null());
  const int raw = a.release();
  EXPECT_FALSE(a);
  EXPECT_TRUE(fd_is_open(raw));
  a.reset();  // owns nothing: closes nothing
  EXPECT_TRUE(fd_is_open(raw));
  ::close(raw);
}

TEST(UniqueFd, NoDoubleCloseOfAReusedNumber) {
  // The classic double-close bug: an owner closes its number a second time after the kernel has
  // handed that number to someone else. A moved-from or reset owner holds -1 and cannot.
  UniqueFd a(open_null());
  const int raw = a.get();
  UniqueFd b = std::move(a);
  b.reset();  // closed once
  EXPECT_FALSE(fd_is_open(raw));
  const int reused = open_null();  // the lowest free number: very likely raw again
  { UniqueFd gone = std::move(a); }  // NOLINT(bugprone-use-after-move): destroys an empty owner
  a.reset();
  b.reset();
  EXPECT_TRUE(fd_is_open(reused));
  ::close(reused);

  UniqueFd same(open_null());
  const int n = same.get();
  same.reset(n);  // resetting to the descriptor it already holds does not close it
  EXPECT_TRUE(fd_is_open(n));
}

TEST(UniqueFd, DuplicateIsIndependentAndCloseOnExec) {
  UniqueFd a(open_null());
  UniqueFd b = a.duplicate();
  EXPECT_NE(a.get(), b.get());
  EXPECT_TRUE(::fcntl(b.get(), F_GETFD) & FD_CLOEXEC);
  a.reset();
  EXPECT_TRUE(fd_is_open(b.get()));
  EXPECT_THROW(UniqueFd().duplicate(), kiln::Error);
}

TEST(PipeAndSocketPair, AreConnectedAndCloseOnExec) {
  Pipe p = Pipe::create();
  ASSERT_EQ(::write(p.write.get(), "x", 1), 1);
  char c = 0;
  ASSERT_EQ(::read(p.read.get(), &c, 1), 1);
  EXPECT_EQ(c, 'x');
  EXPECT_TRUE(::fcntl(p.read.get(), F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(::fcntl(p.write.get(), F_GETFD) & FD_CLOEXEC);

  SocketPair s = SocketPair::create();
  ASSERT_EQ(::write(s.first.get(), "y", 1), 1);
  ASSERT_EQ(::read(s.second.get(), &c, 1), 1);
  EXPECT_EQ(c, 'y');
  ASSERT_EQ(::write(s.second.get(), "z", 1), 1);  // both ways
  ASSERT_EQ(::read(s.first.get(), &c, 1), 1);
  EXPECT_EQ(c, 'z');
  EXPECT_TRUE(::fcntl(s.first.get(), F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(::fcntl(s.second.get(), F_GETFD) & FD_CLOEXEC);
}

}  // namespace
