// The core layer without a GPU: headers link from two translation units, empty owners are safe,
// and every call that needs the driver fails with kiln's clear error instead of crashing.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>

#include "kiln/core.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::testing {
std::size_t odr_a();
std::size_t odr_b();
}  // namespace kiln::testing

namespace {

using namespace kiln::core;

bool driver_present() { return kiln::driver::driver_state().api != nullptr; }

TEST(CoreHeaders, LinkFromTwoTranslationUnits) {
  EXPECT_EQ(kiln::testing::odr_a(), kiln::testing::odr_b());
}

TEST(CoreOwners, EmptyOwnersMoveAndDestroyWithoutTheDriver) {
  // Default-constructed owners hold nothing: moving and destroying them never calls the driver.
  Stream s1, s2;
  s2 = std::move(s1);
  Event e1;
  Event e2(std::move(e1));
  DeviceBuffer d1;
  DeviceBuffer d2(std::move(d1));
  DeviceBuffer& alias = d2;  // self-move through an alias (compilers rightly warn on the direct form)
  d2 = std::move(alias);
  PinnedBuffer p;
  ManagedBuffer m;
  HostRegistration h;
  ShareableBuffer v1;
  ShareableBuffer v2(std::move(v1));
  ShareableBuffer& v_alias = v2;
  v2 = std::move(v_alias);
  v1 = std::move(v2);
  Module mod;
  Library lib;
  Graph g;
  GraphExec x;
  Context c;
  EXPECT_FALSE(s2);
  EXPECT_FALSE(d2);
  EXPECT_FALSE(mod);
  EXPECT_FALSE(g);
  EXPECT_FALSE(v1);
  EXPECT_EQ(v1.data(), 0u);
  EXPECT_EQ(v1.size(), 0u);
}

TEST(CoreValues, LaunchConfigCover) {
  constexpr auto c = LaunchConfig::cover(1000, 256);
  EXPECT_EQ(c.grid.x, 4u);
  EXPECT_EQ(c.block.x, 256u);
  EXPECT_EQ(LaunchConfig::cover(1024, 256).grid.x, 4u);
  EXPECT_EQ(LaunchConfig::cover(1, 256).grid.x, 1u);
  DeviceSpan<float> span(0x1000, 10);
  EXPECT_EQ(span.size_bytes(), 40u);
  EXPECT_EQ(span.subspan(2, 3).data(), 0x1008u);
  EXPECT_EQ(span.kernel_argument(), reinterpret_cast<float*>(0x1000));
}

template <typename F>
void expect_no_driver_error(F&& f, const char* what) {
  try {
    f();
    ADD_FAILURE() << what << " succeeded without a driver";
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(kiln::Errc::driver_not_found)) << what << ": " << e.what();
    EXPECT_NE(std::string(e.what()).find("libcuda.so.1"), std::string::npos) << what << ": " << e.what();
  }
}

TEST(CoreNoDriver, EveryEntryFailsWithTheNoDriverError) {
  if (driver_present()) GTEST_SKIP() << "a driver is installed here";
  expect_no_driver_error([] { Device::count(); }, "Device::count");
  expect_no_driver_error([] { Device::get(0); }, "Device::get");
  expect_no_driver_error([] { current_context(); }, "current_context");
  expect_no_driver_error([] { CurrentContextGuard g(ContextRef{}); }, "CurrentContextGuard");
  ContextRef fake(reinterpret_cast<CUcontext>(0x1), 0);
  expect_no_driver_error([&] { Stream::create(fake); }, "Stream::create");
  expect_no_driver_error([&] { Event::create(fake); }, "Event::create");
  expect_no_driver_error([&] { DeviceBuffer::allocate(fake, 16); }, "DeviceBuffer::allocate");
  expect_no_driver_error([&] { PinnedBuffer::allocate(fake, 16); }, "PinnedBuffer::allocate");
  expect_no_driver_error([&] { ManagedBuffer::allocate(fake, 16); }, "ManagedBuffer::allocate");
  expect_no_driver_error([&] { ShareableBuffer::allocate(fake, 16); }, "ShareableBuffer::allocate");
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  ::close(pipe_fds[1]);
  expect_no_driver_error([&] { ShareableBuffer::import(fake, pipe_fds[0], 16); }, "ShareableBuffer::import");
  errno = 0;
  EXPECT_EQ(::fcntl(pipe_fds[0], F_GETFD), -1) << "import did not close the descriptor it was given";
  EXPECT_EQ(errno, EBADF);
  expect_no_driver_error([&] { Module::load(fake, std::string_view("x")); }, "Module::load");
  expect_no_driver_error([&] { Library::load(std::string_view("x")); }, "Library::load");
  expect_no_driver_error([&] { pointer_attributes(static_cast<const void*>(&fake)); }, "pointer_attributes");
  int x = 0;
  expect_no_driver_error([&] { copy(&x, &x, sizeof x, fake); }, "copy");
  expect_no_driver_error([&] { fake.synchronize(); }, "ContextRef::synchronize");
}

TEST(CoreMisuse, EmptyHandlesGiveKilnErrors) {
  // These are refused before any driver call, driver or not.
  Stream s;
  Event e;
  Module m;
  try {
    s.ref().synchronize();
    FAIL();
  } catch (const kiln::Error& err) {
    EXPECT_TRUE(err.is(kiln::Errc::invalid_handle)) << err.what();
  }
  EXPECT_THROW(e.query(), kiln::Error);
  EXPECT_THROW(m.kernel("k"), kiln::Error);
  EXPECT_THROW(DeviceBuffer::allocate(ContextRef{}, 0), kiln::Error);
}

// What ShareableBuffer refuses before any driver call, driver or not: the error says what was wrong,
// and a descriptor handed to import() is closed whatever happens.
TEST(CoreMisuse, ShareableBufferRefusesBadArgumentsClearly) {
  auto refusal = [](auto&& f) -> kiln::Error {
    try {
      f();
    } catch (const kiln::Error& e) {
      return e;
    }
    ADD_FAILURE() << "accepted";
    return kiln::Error(kiln::Errc::internal, "accepted");
  };
  kiln::Error e = refusal([] { ShareableBuffer::import(ContextRef{}, -1, 4096); });
  EXPECT_TRUE(e.is(kiln::Errc::invalid_argument)) << e.what();
  EXPECT_EQ(e.detail(), "ShareableBuffer::import of descriptor -1");

  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  ::close(pipe_fds[1]);
  e = refusal([&] { ShareableBuffer::import(ContextRef{}, pipe_fds[0], 0); });
  EXPECT_TRUE(e.is(kiln::Errc::invalid_argument)) << e.what();
  EXPECT_NE(e.detail().find("of 0 bytes"), std::string::npos) << e.what();
  errno = 0;
  EXPECT_EQ(::fcntl(pipe_fds[0], F_GETFD), -1) << "a refused import did not close its descriptor";
  EXPECT_EQ(errno, EBADF);

  e = refusal([] { ShareableBuffer::allocate(ContextRef{}, 0); });
  EXPECT_TRUE(e.is(kiln::Errc::invalid_argument)) << e.what();
  EXPECT_EQ(e.detail(), "ShareableBuffer::allocate of 0 bytes");

  const ShareableBuffer empty;
  e = refusal([&] { (void)empty.export_fd(); });
  EXPECT_TRUE(e.is(kiln::Errc::invalid_handle)) << e.what();
  EXPECT_EQ(e.detail(), "export_fd() on an empty ShareableBuffer");
}

}  // namespace
