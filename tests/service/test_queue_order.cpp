// The in-process queue's ordering rules, on real jobs: priority, aging, round-robin between tenants,
// FIFO within a tenant, device lanes, leases, limits.
#include <gtest/gtest.h>

#include <thread>

#include "kiln/service/in_process_queue.hpp"

namespace kiln::service {
namespace {

using namespace std::chrono_literals;

QueuedJob job(JobId id, std::string tenant, Priority p, Clock::time_point enqueued, int device = 0) {
  return QueuedJob{id, std::move(tenant), p, device, enqueued, 0};
}

std::vector<JobId> drain(InProcessQueue& q, int device = 0) {
  std::vector<JobId> order;
  while (auto c = q.try_claim(device, "test", 1min)) {
    order.push_back(c->job.id);
    q.ack(c->job.id);
  }
  return order;
}

TEST(QueueOrder, HigherPriorityFirstThenFifo) {
  InProcessQueue q({100, 100, std::chrono::milliseconds(0)});  // no aging
  const auto t = Clock::now();
  ASSERT_EQ(q.enqueue(job(1, "a", Priority::low, t)), EnqueueStatus::accepted);
  ASSERT_EQ(q.enqueue(job(2, "a", Priority::normal, t + 1ms)), EnqueueStatus::accepted);
  ASSERT_EQ(q.enqueue(job(3, "a", Priority::high, t + 2ms)), EnqueueStatus::accepted);
  ASSERT_EQ(q.enqueue(job(4, "a", Priority::normal, t + 3ms)), EnqueueStatus::accepted);
  ASSERT_EQ(q.enqueue(job(5, "a", Priority::high, t + 4ms)), EnqueueStatus::accepted);
  EXPECT_EQ(q.depth(), (std::array<std::size_t, 3>{2, 2, 1}));
  EXPECT_EQ(drain(q), (std::vector<JobId>{3, 5, 2, 4, 1}));
  EXPECT_EQ(q.depth(), (std::array<std::size_t, 3>{0, 0, 0}));
}

TEST(QueueOrder, AgingLiftsAWaitingLowJob) {
  InProcessQueue q({100, 100, std::chrono::milliseconds(1000)});
  const auto now = Clock::now();
  // A low job that waited 2.5 steps competes as high, and is older than the fresh high job.
  ASSERT_EQ(q.enqueue(job(1, "a", Priority::low, now - 2500ms)), EnqueueStatus::accepted);
  ASSERT_EQ(q.enqueue(job(2, "a", Priority::high, now)), EnqueueStatus::accepted);
  // A low job that waited one step competes as normal: behind the high one, ahead of fresh normals.
  ASSERT_EQ(q.enqueue(job(3, "a", Priority::low, now - 1200ms)), EnqueueStatus::accepted);
  ASSERT_EQ(q.enqueue(job(4, "a", Priority::normal, now)), EnqueueStatus::accepted);
  EXPECT_EQ(q.effective_priority(job(9, "a", Priority::low, now - 2500ms), now), Priority::high);
  EXPECT_EQ(q.effective_priority(job(9, "a", Priority::low, now - 1200ms), now), Priority::normal);
  EXPECT_EQ(q.effective_priority(job(9, "a", Priority::low, now - 500ms), now), Priority::low);
  // Job 3 is behind job 1 in the low line (FIFO), so it is reached once 1 is gone.
  EXPECT_EQ(drain(q), (std::vector<JobId>{1, 2, 3, 4}));
}

TEST(QueueOrder, LowPriorityDoesNotStarveUnderAStreamOfHighJobs) {
  InProcessQueue q({1000, 1000, std::chrono::milliseconds(20)});
  ASSERT_EQ(q.enqueue(job(1, "batch", Priority::low, Clock::now())), EnqueueStatus::accepted);
  JobId next = 2;
  bool low_ran = false;
  const auto give_up = Clock::now() + 5s;
  while (!low_ran && Clock::now() < give_up) {
    // Keep a fresh high job always waiting, as a busy interactive tenant would.
    ASSERT_EQ(q.enqueue(job(next++, "interactive", Priority::high, Clock::now())), EnqueueStatus::accepted);
    auto c = q.try_claim(0, "d", 1min);
    ASSERT_TRUE(c);
    low_ran = c->job.id == 1;
    q.ack(c->job.id);
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_TRUE(low_ran) << "the low job never ran under a stream of " << next - 2 << " high jobs";
}

TEST(QueueOrder, RoundRobinBetweenTenantsAtOneLevel) {
  InProcessQueue q({100, 100, std::chrono::milliseconds(0)});
  const auto t = Clock::now();
  // Tenant "a" floods first; "b" and "c" arrive later with one or two jobs.
  for (JobId i = 1; i <= 5; ++i) ASSERT_EQ(q.enqueue(job(i, "a", Priority::normal, t + std::chrono::milliseconds(i))), EnqueueStatus::accepted);
  ASSERT_EQ(q.enqueue(job(10, "b", Priority::normal, t + 10ms)), EnqueueStatus::accepted);
  ASSERT_EQ(q.enqueue(job(11, "b", Priority::normal, t + 11ms)), EnqueueStatus::accepted);
  ASSERT_EQ(q.enqueue(job(20, "c", Priority::normal, t + 12ms)), EnqueueStatus::accepted);
  EXPECT_EQ(drain(q), (std::vector<JobId>{1, 10, 20, 2, 11, 3, 4, 5}));
}

TEST(QueueOrder, PriorityBeatsFairness) {
  InProcessQueue q({100, 100, std::chrono::milliseconds(0)});
  const auto t = Clock::now();
  ASSERT_EQ(q.enqueue(job(1, "a", Priority::high, t)), EnqueueStatus::accepted);
  ASSERT_EQ(q.enqueue(job(2, "a", Priority::high, t + 1ms)), EnqueueStatus::accepted);
  ASSERT_EQ(q.enqueue(job(3, "b", Priority::normal, t)), EnqueueStatus::accepted);
  EXPECT_EQ(drain(q), (std::vector<JobId>{1, 2, 3}));
}

TEST(QueueOrder, DevicesHaveSeparateLanes) {
  InProcessQueue q({100, 100, std::chrono::milliseconds(0)});
  const auto t = Clock::now();
  ASSERT_EQ(q.enqueue(job(1, "a", Priority::normal, t, 0)), EnqueueStatus::accepted);
  ASSERT_EQ(q.enqueue(job(2, "a", Priority::high, t, 1)), EnqueueStatus::accepted);
  ASSERT_EQ(q.enqueue(job(3, "a", Priority::low, t, 0)), EnqueueStatus::accepted);
  EXPECT_EQ(drain(q, 1), (std::vector<JobId>{2}));
  EXPECT_EQ(drain(q, 0), (std::vector<JobId>{1, 3}));
  EXPECT_FALSE(q.try_claim(2, "d", 1min));
}

TEST(QueueOrder, LimitsRefuseWithTheReason) {
  InProcessQueue q({3, 2, std::chrono::milliseconds(0)});
  const auto t = Clock::now();
  EXPECT_EQ(q.enqueue(job(1, "a", Priority::normal, t)), EnqueueStatus::accepted);
  EXPECT_EQ(q.enqueue(job(2, "a", Priority::normal, t)), EnqueueStatus::accepted);
  EXPECT_EQ(q.enqueue(job(3, "a", Priority::normal, t)), EnqueueStatus::tenant_full);
  EXPECT_EQ(q.enqueue(job(4, "b", Priority::normal, t)), EnqueueStatus::accepted);
  EXPECT_EQ(q.enqueue(job(5, "c", Priority::normal, t)), EnqueueStatus::queue_full);
  auto c = q.try_claim(0, "d", 1min);  // a claim frees a place
  ASSERT_TRUE(c);
  EXPECT_EQ(q.enqueue(job(6, "c", Priority::normal, t)), EnqueueStatus::accepted);
  q.close();
  EXPECT_EQ(q.enqueue(job(7, "c", Priority::normal, t)), EnqueueStatus::closed);
}

TEST(QueueLeases, ExpiredLeaseIsReclaimedAndDeliveredAgain) {
  InProcessQueue q({100, 100, std::chrono::milliseconds(0)});
  ASSERT_EQ(q.enqueue(job(1, "a", Priority::normal, Clock::now())), EnqueueStatus::accepted);
  auto first = q.try_claim(0, "dead-consumer", 10ms);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->job.deliveries, 1u);
  EXPECT_EQ(q.claimed(), 1u);
  EXPECT_EQ(q.reclaim_expired(Clock::now()), 0u);
  EXPECT_EQ(q.reclaim_expired(Clock::now() + 20ms), 1u);
  EXPECT_FALSE(q.ack(1)) << "the dead consumer's lease is gone";
  auto second = q.try_claim(0, "live-consumer", 1min);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->job.id, 1u);
  EXPECT_EQ(second->job.deliveries, 2u);
  EXPECT_EQ(second->consumer, "live-consumer");
  EXPECT_TRUE(q.extend(1, 1min));
  EXPECT_EQ(q.reclaim_expired(Clock::now() + 30s), 0u);
  EXPECT_TRUE(q.ack(1));
  EXPECT_FALSE(q.extend(1, 1min));
  EXPECT_EQ(q.claimed(), 0u);
}

TEST(QueueLeases, RemoveTakesAWaitingJobOut) {
  InProcessQueue q({100, 100, std::chrono::milliseconds(0)});
  ASSERT_EQ(q.enqueue(job(1, "a", Priority::normal, Clock::now())), EnqueueStatus::accepted);
  ASSERT_EQ(q.enqueue(job(2, "a", Priority::normal, Clock::now())), EnqueueStatus::accepted);
  EXPECT_TRUE(q.remove(1));
  EXPECT_FALSE(q.remove(1));
  EXPECT_EQ(drain(q), std::vector<JobId>{2});
}

TEST(QueueBlocking, ClaimWaitsForAJobAndWakesOnClose) {
  InProcessQueue q({100, 100, std::chrono::milliseconds(0)});
  std::optional<Claim> got;
  std::jthread claimer([&](std::stop_token stop) { got = q.claim(3, "d", 1min, stop); });
  std::this_thread::sleep_for(20ms);
  ASSERT_EQ(q.enqueue(job(42, "a", Priority::low, Clock::now(), 3)), EnqueueStatus::accepted);
  claimer.join();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->job.id, 42u);

  std::optional<Claim> none = Claim{};
  std::jthread waiter([&](std::stop_token stop) { none = q.claim(3, "d", 1min, stop); });
  std::this_thread::sleep_for(20ms);
  q.close();
  waiter.join();
  EXPECT_FALSE(none);
}

TEST(QueueBlocking, StopTokenEndsAWaitingClaim) {
  InProcessQueue q;
  std::optional<Claim> none = Claim{};
  std::jthread waiter([&](std::stop_token stop) { none = q.claim(0, "d", 1min, stop); });
  std::this_thread::sleep_for(20ms);
  waiter.request_stop();
  waiter.join();
  EXPECT_FALSE(none);
}

}  // namespace
}  // namespace kiln::service
