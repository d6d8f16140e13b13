// The supervisor's bookkeeping that needs no GPU: which images a worker holds (sent once per key,
// bounded, least recently used unloaded first) and the launches in flight on a concurrent worker
// (matched by job id; every one still pending fails, naming the culprit, when the worker is lost).
// Waits that must block are checked by a second thread and the record's own counts, not by sleeps.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "service/detail/inflight_launches.hpp"
#include "service/detail/loaded_images.hpp"

namespace {

using namespace kiln::service;
using detail::InFlightLaunches;
using detail::LoadedImages;
using namespace std::chrono_literals;
using Strings = std::vector<std::string>;

TEST(LoadedImages, AnImageIsRecordedOnceAndTouchedAfterwards) {
  LoadedImages images;
  EXPECT_FALSE(images.touch("a"));
  EXPECT_TRUE(images.add("a", 100).empty());
  EXPECT_TRUE(images.touch("a"));
  EXPECT_TRUE(images.contains("a"));
  EXPECT_EQ(images.size(), 1u);
  EXPECT_EQ(images.bytes(), 100u);
  EXPECT_TRUE(images.add("a", 40).empty()) << "adding a held key updates its size";
  EXPECT_EQ(images.bytes(), 40u);
  EXPECT_EQ(images.limits().max_images, 256u);
  EXPECT_EQ(images.limits().max_bytes, std::size_t{512} << 20);
}

TEST(LoadedImages, EvictsTheLeastRecentlyUsedBeyondTheCount) {
  LoadedImages images({3, 1u << 30});
  images.add("a", 1);
  images.add("b", 1);
  images.add("c", 1);
  EXPECT_TRUE(images.touch("a"));  // order now a, c, b
  EXPECT_EQ(images.add("d", 1), Strings{"b"});
  EXPECT_FALSE(images.contains("b"));
  EXPECT_EQ(images.add("e", 1), Strings{"c"});
  EXPECT_EQ(images.size(), 3u);
}

TEST(LoadedImages, EvictsBeyondTheBytesAndAdmitsAnOversizedImageAlone) {
  LoadedImages images({100, 1000});
  images.add("a", 400);
  images.add("b", 400);
  EXPECT_EQ(images.add("c", 400), Strings{"a"});
  EXPECT_EQ(images.bytes(), 800u);
  EXPECT_EQ(images.add("huge", 5000), (Strings{"b", "c"})) << "least recently used first";
  EXPECT_TRUE(images.contains("huge"));
  EXPECT_EQ(images.size(), 1u);
  EXPECT_EQ(images.add("small", 10), Strings{"huge"});
  EXPECT_EQ(images.bytes(), 10u);
}

TEST(LoadedImages, ForgetAndClear) {
  LoadedImages images;
  images.add("a", 10);
  images.add("b", 20);
  EXPECT_TRUE(images.forget("a"));
  EXPECT_FALSE(images.forget("a"));
  EXPECT_EQ(images.bytes(), 20u);
  EXPECT_FALSE(images.touch("a")) << "a forgotten key is sent again";
  images.clear();
  EXPECT_EQ(images.size(), 0u);
  EXPECT_EQ(images.bytes(), 0u);
  EXPECT_FALSE(images.contains("b"));
}

LaunchOutcome outcome(std::uint64_t job, LaunchStatus status = LaunchStatus::completed, std::string error = {},
                      bool sticky = false) {
  LaunchOutcome o;
  o.job_id = job;
  o.status = status;
  o.error_name = std::move(error);
  o.message = o.error_name.empty() ? "" : "explained";
  o.sticky = sticky;
  return o;
}

constexpr auto kNoWait = std::chrono::steady_clock::time_point{};  // already past

TEST(InFlightLaunches, RepliesMatchTheirJobsInAnyOrder) {
  InFlightLaunches f;
  ASSERT_TRUE(f.add(1, {10}));
  ASSERT_TRUE(f.add(2, {20}));
  EXPECT_FALSE(f.add(2, {})) << "a job is registered once";
  EXPECT_FALSE(f.wait(1, kNoWait)) << "no reply yet";
  EXPECT_TRUE(f.complete(outcome(2, LaunchStatus::failed, "CUDA_ERROR_INVALID_VALUE")));
  EXPECT_TRUE(f.complete(outcome(1)));
  EXPECT_FALSE(f.complete(outcome(1))) << "a result, once given, stays";
  EXPECT_FALSE(f.complete(outcome(7))) << "an unknown job";
  auto one = f.wait(1, kNoWait), two = f.wait(2, kNoWait);
  ASSERT_TRUE(one && two);
  EXPECT_EQ(one->status, LaunchStatus::completed);
  EXPECT_TRUE(one->suspect_buffers.empty());
  EXPECT_EQ(two->status, LaunchStatus::failed);
  EXPECT_EQ(two->error_name, "CUDA_ERROR_INVALID_VALUE");
  EXPECT_EQ(two->suspect_buffers, std::vector<BufferId>{20});
  EXPECT_EQ(f.pending(), 0u);
  EXPECT_FALSE(f.lost());
}

TEST(InFlightLaunches, AWaiterIsWokenByItsReply) {
  InFlightLaunches f;
  ASSERT_TRUE(f.add(5, {}));
  auto waiter = std::async(std::launch::async, [&] { return f.wait(5, std::chrono::steady_clock::time_point::max()); });
  EXPECT_EQ(waiter.wait_for(50ms), std::future_status::timeout);
  f.complete(outcome(5));
  auto r = waiter.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, LaunchStatus::completed);
}

TEST(InFlightLaunches, AStickyOutcomeAbortsEveryNeighbourNamingIt) {
  InFlightLaunches f;
  ASSERT_TRUE(f.add(1, {11}));
  ASSERT_TRUE(f.add(2, {21, 22}));
  ASSERT_TRUE(f.add(3, {31}));
  f.complete(outcome(3));  // finished before the fault: stays completed
  auto waiter = std::async(std::launch::async, [&] { return f.wait(2, std::chrono::steady_clock::time_point::max()); });
  f.complete(outcome(1, LaunchStatus::failed, "CUDA_ERROR_ILLEGAL_ADDRESS", true));
  EXPECT_TRUE(f.lost());
  EXPECT_NE(f.loss().find("job 1"), std::string::npos) << f.loss();
  EXPECT_FALSE(f.add(4, {})) << "nothing joins a lost worker";
  auto culprit = f.wait(1, kNoWait);
  ASSERT_TRUE(culprit);
  EXPECT_TRUE(culprit->sticky);
  EXPECT_EQ(culprit->error_name, "CUDA_ERROR_ILLEGAL_ADDRESS");
  EXPECT_EQ(culprit->suspect_buffers, std::vector<BufferId>{11});
  auto neighbour = waiter.get();
  ASSERT_TRUE(neighbour);
  EXPECT_EQ(neighbour->status, LaunchStatus::failed);
  EXPECT_EQ(neighbour->error_name, detail::kAbortedByNeighbour);
  EXPECT_NE(neighbour->message.find("job 1 on the same GPU worker hit CUDA_ERROR_ILLEGAL_ADDRESS"), std::string::npos)
      << neighbour->message;
  EXPECT_EQ(neighbour->suspect_buffers, (std::vector<BufferId>{21, 22}));
  EXPECT_FALSE(neighbour->sticky) << "only the culprit's own error is sticky";
  auto done = f.wait(3, kNoWait);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->status, LaunchStatus::completed);
  EXPECT_FALSE(f.complete(outcome(2))) << "a late reply does not undo the abort";
}

TEST(InFlightLaunches, ADeadlineBlamesItsJobAndAbortsTheRest) {
  InFlightLaunches f;
  ASSERT_TRUE(f.add(1, {1}));
  ASSERT_TRUE(f.add(2, {2}));
  ASSERT_TRUE(f.add(3, {3}));
  f.complete(outcome(3));
  EXPECT_EQ(f.blame(3, "ran past its deadline")->status, LaunchStatus::completed)
      << "a reply that came before the blame wins, and nothing is lost";
  EXPECT_FALSE(f.lost());
  EXPECT_FALSE(f.blame(1, "ran past its deadline"));
  EXPECT_TRUE(f.lost());
  auto r = f.wait(2, kNoWait);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error_name, detail::kAbortedByNeighbour);
  EXPECT_NE(r->message.find("job 1 on the same GPU worker ran past its deadline"), std::string::npos) << r->message;
  EXPECT_EQ(r->suspect_buffers, std::vector<BufferId>{2});
  EXPECT_EQ(f.pending(), 0u) << "the blamed job left the record";
}

TEST(InFlightLaunches, ALostWorkerFailsEveryPendingLaunchOnce) {
  InFlightLaunches f;
  ASSERT_TRUE(f.add(1, {1}));
  f.lose("the GPU worker for GPU 0 ended during the launch");
  f.lose("a second loss is not reported");
  auto r = f.wait(1, kNoWait);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, LaunchStatus::failed);
  EXPECT_EQ(r->error_name, detail::kWorkerLost);
  EXPECT_NE(r->message.find("ended during the launch"), std::string::npos) << r->message;
  EXPECT_EQ(f.loss(), "the GPU worker for GPU 0 ended during the launch");
  EXPECT_FALSE(f.add(2, {}));
  ASSERT_TRUE(InFlightLaunches().add(1, {}));
}

TEST(InFlightLaunches, RemoveForgetsAJobThatWasNeverSent) {
  InFlightLaunches f;
  ASSERT_TRUE(f.add(1, {}));
  f.remove(1);
  EXPECT_EQ(f.pending(), 0u);
  f.lose("gone");
  EXPECT_EQ(f.pending(), 0u);
}

// Isolation mode: the worker runs one launch at a time in the order sent, so a loss fails only the
// launch that was running and sends the ones queued behind it to the replacement.
using Order = InFlightLaunches::Order;

TEST(InFlightLaunchesSequential, ACrashFailsTheRunningLaunchAndRequeuesTheRest) {
  InFlightLaunches f(Order::sequential);
  ASSERT_TRUE(f.add(7, {70}));
  ASSERT_TRUE(f.add(3, {30}));  // sent second: job ids need not follow the sending order
  ASSERT_TRUE(f.add(9, {90}));
  f.complete(outcome(7));
  f.lose("the GPU worker for GPU 0 ended during the launch");
  auto done = f.wait(7, kNoWait), running = f.wait(3, kNoWait), queued = f.wait(9, kNoWait);
  ASSERT_TRUE(done && running && queued);
  EXPECT_EQ(done->status, LaunchStatus::completed);
  EXPECT_EQ(running->error_name, detail::kWorkerLost) << "the oldest without a reply was the one running";
  EXPECT_EQ(running->suspect_buffers, std::vector<BufferId>{30});
  EXPECT_EQ(queued->error_name, detail::kNotStarted);
  EXPECT_NE(queued->message.find("did not start"), std::string::npos) << queued->message;
  EXPECT_TRUE(queued->suspect_buffers.empty()) << "it never ran: it wrote nothing";
}

TEST(InFlightLaunchesSequential, AStickyFaultRequeuesEveryLaunchBehindIt) {
  InFlightLaunches f(Order::sequential);
  ASSERT_TRUE(f.add(1, {1}));
  ASSERT_TRUE(f.add(2, {2}));
  ASSERT_TRUE(f.add(3, {3}));
  f.complete(outcome(1, LaunchStatus::failed, "CUDA_ERROR_ILLEGAL_ADDRESS", true));
  EXPECT_TRUE(f.lost());
  EXPECT_TRUE(f.wait(1, kNoWait)->sticky);
  for (std::uint64_t job : {2, 3}) {
    auto r = f.wait(job, kNoWait);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->error_name, detail::kNotStarted) << job;
    EXPECT_FALSE(r->sticky);
  }
}

TEST(InFlightLaunchesSequential, AQueuedLaunchsDeadlineCountsOnceItRuns) {
  InFlightLaunches f(Order::sequential);
  ASSERT_TRUE(f.add(1, {}));
  ASSERT_TRUE(f.add(2, {}));
  // Job 2's deadline has passed, but job 1 runs: blaming 2 would end job 1 with it.
  auto waiter = std::async(std::launch::async, [&] { return f.wait(2, kNoWait); });
  EXPECT_EQ(waiter.wait_for(50ms), std::future_status::timeout) << "it waits for its turn";
  f.complete(outcome(1));
  EXPECT_FALSE(waiter.get()) << "now it runs, past its deadline: the caller may blame it";
  EXPECT_FALSE(f.blame(2, "ran past its deadline"));
  EXPECT_TRUE(f.lost());
  EXPECT_EQ(f.wait(1, kNoWait)->status, LaunchStatus::completed) << "the one before it is untouched";
}

TEST(InFlightLaunchesSequential, BlamingTheRunningLaunchRequeuesTheQueuedOnes) {
  InFlightLaunches f(Order::sequential);
  ASSERT_TRUE(f.add(1, {1}));
  ASSERT_TRUE(f.add(2, {2}));
  EXPECT_FALSE(f.wait(1, kNoWait)) << "the oldest: its deadline counts";
  EXPECT_FALSE(f.blame(1, "ran past its deadline"));
  auto r = f.wait(2, kNoWait);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error_name, detail::kNotStarted);
}

TEST(InFlightLaunchesSequential, RemovingTheOldestLetsTheNextOnesDeadlineCount) {
  InFlightLaunches f(Order::sequential);
  ASSERT_TRUE(f.add(1, {}));
  ASSERT_TRUE(f.add(2, {}));
  auto waiter = std::async(std::launch::async, [&] { return f.wait(2, kNoWait); });
  EXPECT_EQ(waiter.wait_for(50ms), std::future_status::timeout);
  f.remove(1);  // its frame never reached the worker
  EXPECT_FALSE(waiter.get());
}

TEST(InFlightLaunches, ASpinningWaiterGetsItsReply) {
  InFlightLaunches f(Order::any, std::chrono::microseconds(200000));
  ASSERT_TRUE(f.add(1, {}));
  auto waiter = std::async(std::launch::async, [&] { return f.wait(1, std::chrono::steady_clock::time_point::max()); });
  std::this_thread::sleep_for(10ms);
  f.complete(outcome(1));
  auto r = waiter.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, LaunchStatus::completed);
  EXPECT_EQ(f.pending(), 0u);
}

}  // namespace
