// The scheduler's CPU-side behaviour: placement without GPUs, job records and tenant isolation,
// shutdown cancelling what waits, memory admission. (Launches on GPUs are the worker tests'.)
#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <thread>

#include "kiln/memory/out_of_memory.hpp"
#include "kiln/service/in_process_queue.hpp"
#include "kiln/service/no_gpu_backend.hpp"
#include "kiln/service/scheduler.hpp"

namespace kiln::service {
namespace {

using namespace std::chrono_literals;

LaunchSpec spec_for(std::string tenant) {
  LaunchSpec spec;
  spec.tenant = std::move(tenant);
  spec.kernel = "k";
  spec.deadline = Clock::now() + 1min;
  return spec;
}

// A stand-in for one GPU that records which kernel ran on which thread; kernel "block" waits until
// released. (This machine has no GPU; the real WorkerPool runs in the GPU tests.)
class RecordingBackend final : public GpuBackend {
 public:
  std::vector<DeviceStatus> devices() override {
    DeviceStatus d;
    d.worker_up = true;
    d.arch = 90;
    return {d};
  }
  BufferId create_buffer(int, std::size_t, std::string_view) override { return 0; }
  std::size_t buffer_size(BufferId) override { return 0; }
  void write_buffer(BufferId, std::size_t, std::span<const std::byte>) override {}
  std::vector<std::byte> read_buffer(BufferId, std::size_t, std::size_t) override { return {}; }
  void free_buffer(BufferId) override {}
  LaunchResult launch(const LaunchSpec& spec) override {
    if (spec.kernel == "block") {
      started.set_value();
      release.get_future().wait();
    }
    std::lock_guard lock(mutex);
    ran.emplace_back(spec.kernel, std::this_thread::get_id());
    return {};
  }
  std::promise<void> started, release;
  std::mutex mutex;
  std::vector<std::pair<std::string, std::thread::id>> ran;
};

LaunchSpec kernel_spec(std::string kernel) {
  LaunchSpec spec;
  spec.tenant = "alice";
  spec.kernel = std::move(kernel);
  spec.deadline = Clock::now() + 1min;
  return spec;
}

TEST(Scheduler, ASynchronousCallerRunsItsJobOnItsOwnThread) {
  RecordingBackend backend;
  InProcessQueue queue;
  Metrics metrics;
  Scheduler scheduler(backend, queue, metrics);
  // A dispatcher still starting up may find the job in the queue before the caller claims it (the
  // inline lane is a shortcut, not a promise): of several submissions, those the caller ran were
  // finished when submit returned, and every one ran once.
  int inline_runs = 0;
  for (int i = 0; i < 20; ++i) {
    const SubmitResult r = scheduler.submit(kernel_spec("mine"), Priority::normal, /*run_here=*/true);
    ASSERT_EQ(r.status, SubmitStatus::accepted);
    auto done = scheduler.wait(r.id, "alice", std::chrono::seconds(30));
    ASSERT_TRUE(done);
    EXPECT_EQ(done->state, JobState::finished);
  }
  ASSERT_EQ(backend.ran.size(), 20u);
  for (const auto& [kernel, thread] : backend.ran) inline_runs += thread == std::this_thread::get_id() ? 1 : 0;
  EXPECT_GE(inline_runs, 10) << "once the dispatchers wait, the caller runs its own job";
}

TEST(Scheduler, ACallerRunningInlineTakesTheQueuesChoiceNotItsOwnJob) {
  RecordingBackend backend;
  InProcessQueue queue;
  Metrics metrics;
  Scheduler scheduler(backend, queue, metrics, SchedulerOptions{.dispatchers_per_device = 1});
  // The only dispatcher is busy, so the next jobs wait in the queue.
  const SubmitResult blocker = scheduler.submit(kernel_spec("block"), Priority::normal);
  backend.started.get_future().wait();
  const SubmitResult urgent = scheduler.submit(kernel_spec("urgent"), Priority::high);
  const SubmitResult mine = scheduler.submit(kernel_spec("mine"), Priority::low, /*run_here=*/true);
  // This thread ran the waiting high-priority job; its own low-priority one still waits.
  EXPECT_EQ(scheduler.find(urgent.id, "alice")->state, JobState::finished);
  EXPECT_EQ(scheduler.find(mine.id, "alice")->state, JobState::queued);
  backend.release.set_value();
  auto last = scheduler.wait(mine.id, "alice", 10s);
  ASSERT_TRUE(last);
  EXPECT_EQ(last->state, JobState::finished) << "the dispatcher was woken for the job left waiting";
  EXPECT_EQ(scheduler.wait(blocker.id, "alice", 10s)->state, JobState::finished);
  std::lock_guard lock(backend.mutex);
  ASSERT_EQ(backend.ran.size(), 3u);
  EXPECT_EQ(backend.ran[0].first, "urgent");
  EXPECT_EQ(backend.ran[0].second, std::this_thread::get_id());
  EXPECT_EQ(backend.ran[1].first, "block");
  EXPECT_EQ(backend.ran[2].first, "mine");
  EXPECT_NE(backend.ran[2].second, std::this_thread::get_id());
}

TEST(Scheduler, PlacementWithoutGpuSaysWhy) {
  NoGpuBackend backend("no driver here");
  InProcessQueue queue;
  Metrics metrics;
  Scheduler scheduler(backend, queue, metrics);
  try {
    scheduler.place(std::nullopt);
    FAIL();
  } catch (const Error& e) {
    EXPECT_TRUE(e.is(Errc::driver_not_found));
    EXPECT_NE(std::string(e.what()).find("no GPU on this machine"), std::string::npos) << e.what();
  }
}

TEST(Scheduler, JobsAreRecordedPerTenantAndCancelledAtShutdown) {
  NoGpuBackend backend("none");
  InProcessQueue queue;
  Metrics metrics;
  Scheduler scheduler(backend, queue, metrics);  // no GPU: no dispatchers, jobs stay queued
  const SubmitResult a = scheduler.submit(spec_for("alice"), Priority::low);
  ASSERT_EQ(a.status, SubmitStatus::accepted);
  EXPECT_EQ(queue.depth()[static_cast<std::size_t>(Priority::low)], 1u);

  auto seen = scheduler.wait(a.id, "alice", 10ms);
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->state, JobState::queued);
  EXPECT_EQ(seen->priority, Priority::low);
  EXPECT_GE(seen->total_ms, 10.0);
  EXPECT_FALSE(scheduler.find(a.id, "bob")) << "another tenant's job must look absent";
  EXPECT_FALSE(scheduler.find(a.id + 1000, "alice"));

  scheduler.shutdown(20ms);
  auto after = scheduler.find(a.id, "alice");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->state, JobState::finished);
  EXPECT_EQ(after->outcome, JobOutcome::cancelled);
  EXPECT_NE(after->result.message.find("shut down"), std::string::npos);
  EXPECT_EQ(metrics.jobs(JobOutcome::cancelled), 1u);
  EXPECT_EQ(queue.depth()[static_cast<std::size_t>(Priority::low)], 0u);

  const SubmitResult late = scheduler.submit(spec_for("alice"), Priority::normal);
  EXPECT_EQ(late.status, SubmitStatus::shutting_down);
  EXPECT_NE(late.message.find("shutting down"), std::string::npos);
}

TEST(Scheduler, QueueLimitsComeBackAsRefusals) {
  NoGpuBackend backend("none");
  InProcessQueue queue({2, 1, 0ms});
  Metrics metrics;
  Scheduler scheduler(backend, queue, metrics);
  EXPECT_EQ(scheduler.submit(spec_for("alice"), Priority::normal).status, SubmitStatus::accepted);
  const SubmitResult second = scheduler.submit(spec_for("alice"), Priority::normal);
  EXPECT_EQ(second.status, SubmitStatus::tenant_full);
  EXPECT_NE(second.message.find("alice"), std::string::npos);
  EXPECT_EQ(scheduler.submit(spec_for("bob"), Priority::normal).status, SubmitStatus::accepted);
  EXPECT_EQ(scheduler.submit(spec_for("carol"), Priority::normal).status, SubmitStatus::queue_full);
}

TEST(Scheduler, FinishedJobsAreForgottenAfterRetention) {
  NoGpuBackend backend("none");
  InProcessQueue queue;
  Metrics metrics;
  Scheduler scheduler(backend, queue, metrics, SchedulerOptions{1, 5000ms, std::chrono::seconds(0)});
  const SubmitResult a = scheduler.submit(spec_for("alice"), Priority::normal);
  scheduler.shutdown(0ms);  // cancels it: finished now
  ASSERT_TRUE(scheduler.find(a.id, "alice"));
  scheduler.submit(spec_for("alice"), Priority::normal);  // refused (shut down), but prunes first
  EXPECT_FALSE(scheduler.find(a.id, "alice"));
}

TEST(MemoryAdmission, RefusesWithTheDevicePicture) {
  DeviceStatus d;
  d.ordinal = 1;
  d.name = "NVIDIA H100 80GB HBM3";
  d.memory_total = 80ull << 30;
  d.memory_free = 1ull << 30;
  EXPECT_NO_THROW(admit_buffer(d, 512u << 20, 0));
  try {
    admit_buffer(d, 2ull << 30, 10ull << 30);
    FAIL();
  } catch (const memory::OutOfMemoryError& e) {
    EXPECT_EQ(e.picture().device, 1);
    EXPECT_EQ(e.picture().requested, 2ull << 30);
    EXPECT_EQ(e.picture().free, 1ull << 30);
    EXPECT_EQ(e.picture().total, 80ull << 30);
    EXPECT_EQ(e.picture().in_use, 10ull << 30);
    EXPECT_EQ(e.name(), "CUDA_ERROR_OUT_OF_MEMORY");
  }
}

TEST(NoGpuBackend, EveryGpuCallSaysNoGpu) {
  NoGpuBackend backend("the NVIDIA driver is not installed");
  EXPECT_TRUE(backend.devices().empty());
  auto expect_refusal = [](auto&& call, const char* what) {
    try {
      call();
      ADD_FAILURE() << what << " did not throw";
    } catch (const Error& e) {
      EXPECT_TRUE(e.is(Errc::driver_not_found));
      const std::string text = e.what();
      EXPECT_NE(text.find("no GPU on this machine"), std::string::npos) << text;
      EXPECT_NE(text.find("the NVIDIA driver is not installed"), std::string::npos) << text;
      EXPECT_NE(text.find(what), std::string::npos) << text;
    }
  };
  expect_refusal([&] { backend.create_buffer(0, 64, "t"); }, "create a buffer of 64 bytes");
  expect_refusal([&] { backend.buffer_size(3); }, "buffer 3");
  expect_refusal([&] { backend.write_buffer(4, 0, {}); }, "write buffer 4");
  expect_refusal([&] { backend.read_buffer(5, 0, 1); }, "read buffer 5");
  expect_refusal([&] { backend.free_buffer(6); }, "free buffer 6");
  expect_refusal([&] { backend.launch(spec_for("a")); }, "launch 'k'");
}

TEST(NoGpuBackend, MachineWithoutDriverGetsOne) {
  // This CPU machine has no driver: the factory must explain it.
  const std::string why = why_no_gpu();
  if (why.empty()) GTEST_SKIP() << "this machine has a GPU";
  auto backend = make_no_gpu_backend();
  auto* none = dynamic_cast<NoGpuBackend*>(backend.get());
  ASSERT_NE(none, nullptr);
  EXPECT_EQ(none->reason(), why);
}

}  // namespace
}  // namespace kiln::service
