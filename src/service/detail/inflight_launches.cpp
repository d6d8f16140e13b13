#include "service/detail/inflight_launches.hpp"

#include <thread>

namespace kiln::service::detail {

bool InFlightLaunches::add(std::uint64_t job, std::vector<BufferId> suspects) {
  std::lock_guard lock(mutex_);
  if (lost_) return false;
  auto [it, added] = jobs_.try_emplace(job);
  if (!added) return false;
  it->second.sequence = next_sequence_++;
  it->second.suspects = std::move(suspects);
  return true;
}

void InFlightLaunches::answer_locked(Entry& entry, LaunchResult result) {
  entry.result = std::move(result);
  entry.answered.store(true, std::memory_order_release);
  entry.changed.notify_one();
}

InFlightLaunches::Entry* InFlightLaunches::oldest_unanswered_locked() {
  Entry* oldest = nullptr;
  for (auto& [id, entry] : jobs_)
    if (!entry.result && (!oldest || entry.sequence < oldest->sequence)) oldest = &entry;
  return oldest;
}

// Sequential order: the launch that now runs may be one whose deadline passed while it was queued.
void InFlightLaunches::wake_oldest_locked() {
  if (Entry* oldest = oldest_unanswered_locked()) oldest->changed.notify_one();
}

bool InFlightLaunches::complete(const LaunchOutcome& o) {
  std::lock_guard lock(mutex_);
  auto it = jobs_.find(o.job_id);
  if (it == jobs_.end() || it->second.result) return false;
  LaunchResult r;
  r.status = o.status;
  r.error_name = o.error_name;
  r.message = o.message;
  r.sticky = o.sticky;
  if (o.status != LaunchStatus::completed) r.suspect_buffers = it->second.suspects;
  answer_locked(it->second, std::move(r));
  if (o.sticky)
    lose_locked("job " + std::to_string(o.job_id) + " on the same GPU worker hit " + o.error_name +
                    ", a sticky error that ends the worker's context and every launch in it",
                kAbortedByNeighbour);
  else if (order_ == Order::sequential)
    wake_oldest_locked();
  return true;
}

void InFlightLaunches::lose(const std::string& why) {
  std::lock_guard lock(mutex_);
  lose_locked(why, kWorkerLost);
}

std::optional<LaunchResult> InFlightLaunches::blame(std::uint64_t job, const std::string& what) {
  std::lock_guard lock(mutex_);
  auto it = jobs_.find(job);
  if (it != jobs_.end() && it->second.result) {
    LaunchResult r = std::move(*it->second.result);
    jobs_.erase(it);
    return r;
  }
  if (it != jobs_.end()) jobs_.erase(it);
  lose_locked("job " + std::to_string(job) + " on the same GPU worker " + what, kAbortedByNeighbour);
  return std::nullopt;
}

// `error_name` is kWorkerLost when no launch is known to have ended the worker (a crash, a broken
// channel), else kAbortedByNeighbour (the culprit has its own result, or was blamed).
void InFlightLaunches::lose_locked(const std::string& why, const std::string& error_name) {
  if (lost_) return;
  lost_ = true;
  loss_ = why;
  // Sequential order: after a crash the oldest was running and shares the crash; every other
  // launch (and every one, when the culprit is known) was still queued and never started.
  Entry* running = order_ == Order::sequential && error_name == kWorkerLost ? oldest_unanswered_locked() : nullptr;
  for (auto& [id, entry] : jobs_) {
    if (entry.result) continue;  // a result, once given, stays
    LaunchResult r;
    r.status = LaunchStatus::failed;
    if (order_ == Order::sequential && &entry != running) {
      r.error_name = kNotStarted;
      r.message = "job " + std::to_string(id) + " did not start: " + why +
                  " while it waited its turn (gpu_mode isolation: one launch at a time); it goes to the "
                  "worker's replacement";
    } else {
      r.error_name = error_name;
      r.message = "job " + std::to_string(id) + " was aborted: " + why +
                  (order_ == Order::any ? " (gpu_mode concurrent: launches in flight on one worker share its fate)" : "") +
                  "; the buffers it could write may hold partial results";
      r.suspect_buffers = entry.suspects;
    }
    answer_locked(entry, std::move(r));
  }
}

std::optional<LaunchResult> InFlightLaunches::wait(std::uint64_t job, Clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  auto it = jobs_.find(job);
  if (it == jobs_.end()) {  // never registered or already taken: a caller's mistake, reported as such
    LaunchResult r;
    r.status = LaunchStatus::failed;
    r.error_name = kWorkerLost;
    r.message = "job " + std::to_string(job) + " is not in flight on this GPU worker";
    return r;
  }
  Entry& entry = it->second;  // only this waiter erases it
  auto answered = [&] { return entry.answered.load(std::memory_order_acquire); };
  if (spin_.count() > 0 && !answered()) {
    // The reply is usually microseconds away: poll for it before paying for a wake-up.
    lock.unlock();
    const auto until = std::min(deadline, Clock::now() + spin_);
    while (!answered() && Clock::now() < until) std::this_thread::yield();
    lock.lock();
  }
  bool in_time = true;
  if (deadline == Clock::time_point::max()) {
    entry.changed.wait(lock, answered);  // wait_until(max) can overflow in the conversion to the clock's time
  } else {
    in_time = entry.changed.wait_until(lock, deadline, answered);
  }
  if (!in_time && order_ == Order::sequential) {
    // Past its deadline, but queued behind another launch: it counts once this one runs.
    entry.changed.wait(lock, [&] { return answered() || oldest_unanswered_locked() == &entry; });
    in_time = answered();
  }
  if (!in_time) return std::nullopt;
  LaunchResult r = std::move(*entry.result);
  jobs_.erase(it);
  return r;
}

void InFlightLaunches::remove(std::uint64_t job) {
  std::lock_guard lock(mutex_);
  jobs_.erase(job);
  if (order_ == Order::sequential) wake_oldest_locked();
}

bool InFlightLaunches::lost() const {
  std::lock_guard lock(mutex_);
  return lost_;
}

std::string InFlightLaunches::loss() const {
  std::lock_guard lock(mutex_);
  return loss_;
}

std::size_t InFlightLaunches::pending() const {
  std::lock_guard lock(mutex_);
  return jobs_.size();
}

}  // namespace kiln::service::detail
