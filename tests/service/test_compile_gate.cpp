// The service's compile admission: slots, per-tenant caps, and who gets a freed slot. Every
// assertion is about order and counts, observed through the gate's own counters: no sleeps decide
// an outcome (a sleep only gives a thread time to block, and the test waits until it has).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "detail/compile_gate.hpp"

namespace kiln::testing {
namespace {

using service::detail::CompileGate;
using service::detail::CompileGateLimits;
using namespace std::chrono_literals;

CompileGate::Clock::time_point far() { return CompileGate::Clock::now() + 60s; }

// Waits (bounded) until `tenant` has `n` compiles waiting in the gate.
bool until_waiting(const CompileGate& gate, const std::string& tenant, unsigned n) {
  const auto give_up = CompileGate::Clock::now() + 30s;
  while (gate.waiting(tenant) != n)
    if (CompileGate::Clock::now() > give_up) return false;
    else std::this_thread::sleep_for(1ms);
  return true;
}

TEST(CompileGate, AFloodingTenantWaitsBehindItsOwnWork) {
  CompileGate gate(CompileGateLimits{.slots = 2, .per_tenant = 1, .queued_per_tenant = 3});
  auto a1 = gate.enter("a", far());
  ASSERT_TRUE(a1.ticket);
  // a's next three wait although a slot is free: a is at its cap.
  std::vector<std::future<CompileGate::Admission>> queued;
  for (int i = 0; i < 3; ++i) {
    queued.push_back(std::async(std::launch::async, [&] { return gate.enter("a", far()); }));
    ASSERT_TRUE(until_waiting(gate, "a", i + 1));
  }
  // The fourth waiting one is refused at once.
  auto refused = gate.enter("a", far());
  EXPECT_FALSE(refused.ticket);
  EXPECT_EQ(refused.refusal, CompileGate::Refusal::tenant_queue_full);
  // b gets the free slot at once, ahead of a's queue.
  auto b1 = gate.enter("b", far());
  ASSERT_TRUE(b1.ticket) << "another tenant waited behind a's flood";
  EXPECT_EQ(gate.running(), 2u);
  EXPECT_EQ(gate.running("a"), 1u);
  EXPECT_EQ(gate.waiting("a"), 3u);
  // a's compile ends: a's oldest waiter takes its place, the others still wait.
  a1.ticket.reset();
  auto next = queued[0].get();
  EXPECT_TRUE(next.ticket);
  EXPECT_EQ(gate.waiting("a"), 2u);
  next.ticket.reset();
  for (std::size_t i = 1; i < queued.size(); ++i) {
    auto later = queued[i].get();
    ASSERT_TRUE(later.ticket);
    later.ticket.reset();
  }
  b1.ticket.reset();
  EXPECT_EQ(gate.running(), 0u);
}

TEST(CompileGate, AFreedSlotGoesToTheTenantWithFewestRunning) {
  CompileGate gate(CompileGateLimits{.slots = 2, .per_tenant = 2, .queued_per_tenant = 8});
  auto a1 = gate.enter("a", far()), a2 = gate.enter("a", far());
  ASSERT_TRUE(a1.ticket && a2.ticket);
  // a queues first, then b: when a slot frees, b (0 running) goes before a (1 running).
  auto a3 = std::async(std::launch::async, [&] { return gate.enter("a", far()); });
  ASSERT_TRUE(until_waiting(gate, "a", 1));
  auto b1 = std::async(std::launch::async, [&] { return gate.enter("b", far()); });
  ASSERT_TRUE(until_waiting(gate, "b", 1));
  a1.ticket.reset();
  auto b = b1.get();
  ASSERT_TRUE(b.ticket) << "the freed slot went to the tenant already running one";
  EXPECT_EQ(gate.waiting("a"), 1u) << "a's waiter must still wait";
  b.ticket.reset();
  auto a = a3.get();
  EXPECT_TRUE(a.ticket);
}

TEST(CompileGate, AWaitEndsAtItsDeadline) {
  CompileGate gate(CompileGateLimits{.slots = 1, .per_tenant = 1, .queued_per_tenant = 4});
  auto a1 = gate.enter("a", far());
  ASSERT_TRUE(a1.ticket);
  auto late = gate.enter("b", CompileGate::Clock::now() + 20ms);
  EXPECT_FALSE(late.ticket);
  EXPECT_EQ(late.refusal, CompileGate::Refusal::timed_out);
  EXPECT_EQ(gate.waiting("b"), 0u) << "a waiter that gave up is gone from the queue";
  a1.ticket.reset();
  EXPECT_TRUE(gate.enter("b", far()).ticket) << "the slot is free again";
}

// Many tenants and threads at once: the caps hold at every moment and every admitted compile ends.
TEST(CompileGate, CapsHoldUnderContention) {
  CompileGate gate(CompileGateLimits{.slots = 3, .per_tenant = 2, .queued_per_tenant = 64});
  std::atomic<int> running{0}, peak{0}, admitted{0};
  std::atomic<int> per_tenant[4] = {};
  std::atomic<bool> over_tenant_cap{false};
  const std::string names[4] = {"t0", "t1", "t2", "t3"};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t)
    threads.emplace_back([&, t] {
      const int tenant = t % 4;
      for (int i = 0; i < 50; ++i) {
        auto a = gate.enter(names[tenant], far());
        if (!a.ticket) continue;
        ++admitted;
        const int now = ++running;
        int p = peak.load();
        while (now > p && !peak.compare_exchange_weak(p, now)) {
        }
        if (++per_tenant[tenant] > 2) over_tenant_cap = true;
        std::this_thread::yield();
        --per_tenant[tenant];
        --running;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_LE(peak.load(), 3);
  EXPECT_FALSE(over_tenant_cap.load());
  EXPECT_EQ(admitted.load(), 16 * 50);
  EXPECT_EQ(gate.running(), 0u);
}

}  // namespace
}  // namespace kiln::testing
