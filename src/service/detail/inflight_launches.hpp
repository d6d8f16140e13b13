// The launches one GPU worker incarnation has in flight (concurrent gpu_mode), matched to the
// worker's replies by job id. The supervisor's reader thread completes them from launch_done
// frames; the launching threads wait here, each for its own job and until its own deadline.
//
// When the worker is lost, every launch still pending is failed at once, never left to look
// completed: a sticky outcome (the worker's context is gone and it is exiting: its neighbours'
// kernels died with it), a launch past its deadline (its worker is ended to stop it), a crash or a
// broken channel. The pending ones get error_name kAbortedByNeighbour and a message naming the
// job that took the worker down, or kWorkerLost when none did (a crash), and their suspect buffers.
// Once lost, nothing more is added: the next launch goes to a new worker (and a new record).
//
// Thread safety: every member may be called from any thread at once.
#pragma once

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

class InFlightLaunches {
 public:
  using Clock = std::chrono::steady_clock;

  // Registers a launch before its frame is sent (its reply may come at once); false, and nothing
  // registered, when the worker is lost already or `job` is registered.
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
  // first (it stays registered). time_point::max(): no deadline.
  std::optional<LaunchResult> wait(std::uint64_t job, Clock::time_point deadline);
  // Forgets a registered job (its frame could not be sent).
  void remove(std::uint64_t job);

  bool lost() const;
  std::string loss() const;  // how the worker was lost; empty while it is not
  std::size_t pending() const;

 private:
  struct Entry {
    std::vector<BufferId> suspects;
    std::optional<LaunchResult> result;
  };
  void lose_locked(const std::string& why, const std::string& error_name);

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::uint64_t, Entry> jobs_;
  bool lost_ = false;
  std::string loss_;
};

}  // namespace kiln::service::detail
