// The launches one GPU worker incarnation has in flight, matched to the worker's replies by job
// id. The supervisor's reader thread completes them from launch_done frames; the launching threads
// wait here, each for its own job and until its own deadline, each woken alone by its own reply.
//
// Two orders, one per gpu_mode:
// - any (concurrent): the worker runs launches on several streams at once. When it is lost, every
//   launch still pending is failed at once, never left to look completed: a sticky outcome (the
//   worker's context is gone and it is exiting: its neighbours' kernels died with it), a launch
//   past its deadline (its worker is ended to stop it), a crash or a broken channel. The pending
//   ones get error_name kAbortedByNeighbour and a message naming the job that took the worker down,
//   or kWorkerLost when none did (a crash), and their suspect buffers.
// - sequential (isolation): the worker runs one launch at a time, in the order they were sent, so
//   the supervisor can queue the next frames while one runs (the worker never waits for a round
//   trip) and still knows which launch was running: the oldest without a result. When the worker is
//   lost only that one fails (kWorkerLost for a crash); the others never started and get
//   kNotStarted, to be sent again to the worker's replacement. A launch's deadline starts to count
//   against the worker only once it is the one running (a queued launch cannot be ended without
//   ending the running one).
// Once lost, nothing more is added: the next launch goes to a new worker (and a new record).
//
// Thread safety: every member may be called from any thread at once.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "kiln/service/gpu_backend.hpp"
#include "kiln/service/gpu_worker.hpp"

namespace kiln::service::detail {

inline constexpr const char* kAbortedByNeighbour = "aborted_by_neighbour";
inline constexpr const char* kWorkerLost = "worker_lost";
inline constexpr const char* kNotStarted = "not_started";  // sequential: send it to the replacement

class InFlightLaunches {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Order : std::uint8_t { any, sequential };

  // `spin`: how long a waiter polls for its reply before it sleeps (spin.hpp).
  explicit InFlightLaunches(Order order = Order::any, std::chrono::microseconds spin = {})
      : order_(order), spin_(spin) {}

  // Registers a launch before its frame is sent (its reply may come at once); in sequential order
  // the frames must be sent in the order of these calls. False, and nothing registered, when the
  // worker is lost already or `job` is registered.
  bool add(std::uint64_t job, std::vector<BufferId> suspects);
  // The worker's outcome for a job; false for a job not (or no longer) registered. A sticky
  // outcome loses the worker, naming its job.
  bool complete(const LaunchOutcome& outcome);
  // The worker is gone (`why`: how it ended). Idempotent: the first loss is the one reported.
  void lose(const std::string& why);
  // `job` itself ends the worker (its deadline passed): it leaves the record and the worker is
  // lost, naming it with `what` ("ran past its deadline"). Returns its result instead when that
  // arrived in the meantime (then nothing is lost).
  std::optional<LaunchResult> blame(std::uint64_t job, const std::string& what);
  // `job`'s result once it has one (it then leaves the record), or nullopt when `deadline` passed
  // first (it stays registered; in sequential order, only once it is the launch running).
  // time_point::max(): no deadline.
  std::optional<LaunchResult> wait(std::uint64_t job, Clock::time_point deadline);
  // Forgets a registered job (its frame could not be sent).
  void remove(std::uint64_t job);

  bool lost() const;
  std::string loss() const;  // how the worker was lost; empty while it is not
  std::size_t pending() const;

 private:
  struct Entry {
    std::uint64_t sequence = 0;  // the order of add()
    std::vector<BufferId> suspects;
    std::optional<LaunchResult> result;
    std::atomic<bool> answered{false};  // result is set (read without the lock while spinning)
    std::condition_variable changed;    // its result came, or (sequential) it became the oldest
  };
  void lose_locked(const std::string& why, const std::string& error_name);
  void answer_locked(Entry& entry, LaunchResult result);
  Entry* oldest_unanswered_locked();
  void wake_oldest_locked();

  const Order order_;
  const std::chrono::microseconds spin_;
  mutable std::mutex mutex_;
  std::map<std::uint64_t, Entry> jobs_;  // node-based: an Entry stays put while its waiter holds it
  std::uint64_t next_sequence_ = 0;
  bool lost_ = false;
  std::string loss_;
};

}  // namespace kiln::service::detail
