// The core layer without a GPU: headers link from two translation units, empty owners are safe,
// and every call that needs the driver fails with kiln's clear error instead of crashing.
#include <gtest/gtest.h>

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
  Module mod;
  Library lib;
  Graph g;
  GraphExec x;
  Context c;
  EXPECT_FALSE(s2);
  EXPECT_FALSE(d2);
  EXPECT_FALSE(mod);
  EXPECT_FALSE(g);
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

}  // namespace
