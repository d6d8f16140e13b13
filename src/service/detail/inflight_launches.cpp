#include "service/detail/inflight_launches.hpp"

namespace kiln::service::detail {

bool InFlightLaunches::add(std::uint64_t job, std::vector<BufferId> suspects) {
  std::lock_guard lock(mutex_);
  if (lost_) return false;
  return jobs_.emplace(job, Entry{std::move(suspects), std::nullopt}).second;
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
  it->second.result = std::move(r);
  if (o.sticky)
    lose_locked("job " + std::to_string(o.job_id) + " on the same GPU worker hit " + o.error_name +
                    ", a sticky error that ends the worker's context and every launch in it",
                kAbortedByNeighbour);
  changed_.notify_all();
  return true;
}

void InFlightLaunches::lose(const std::string& why) {
  std::lock_guard lock(mutex_);
  lose_locked(why, kWorkerLost);
  changed_.notify_all();
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
  changed_.notify_all();
  return std::nullopt;
}

void InFlightLaunches::lose_locked(const std::string& why, const std::string& error_name) {
  if (lost_) return;
  lost_ = true;
  loss_ = why;
  for (auto& [id, entry] : jobs_) {
    if (entry.result) continue;  // a result, once given, stays
    LaunchResult r;
    r.status = LaunchStatus::failed;
    r.error_name = error_name;
    r.message = "job " + std::to_string(id) + " was aborted: " + why +
                " (gpu_mode concurrent: launches in flight on one worker share its fate); the buffers it "
                "could write may hold partial results";
    r.suspect_buffers = entry.suspects;
    entry.result = std::move(r);
  }
}

std::optional<LaunchResult> InFlightLaunches::wait(std::uint64_t job, Clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  auto ready = [&] {
    auto it = jobs_.find(job);
    return it == jobs_.end() || it->second.result.has_value();
  };
  if (deadline == Clock::time_point::max()) {
    changed_.wait(lock, ready);  // wait_until(max) can overflow in the conversion to the clock's time
  } else if (!changed_.wait_until(lock, deadline, ready)) {
    return std::nullopt;
  }
  auto it = jobs_.find(job);
  if (it == jobs_.end()) {  // never registered or already taken: a caller's mistake, reported as such
    LaunchResult r;
    r.status = LaunchStatus::failed;
    r.error_name = kWorkerLost;
    r.message = "job " + std::to_string(job) + " is not in flight on this GPU worker";
    return r;
  }
  LaunchResult r = std::move(*it->second.result);
  jobs_.erase(it);
  return r;
}

void InFlightLaunches::remove(std::uint64_t job) {
  std::lock_guard lock(mutex_);
  jobs_.erase(job);
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
