#include "detail/compile_gate.hpp"

#include <algorithm>
#include <stdexcept>

namespace kiln::service::detail {

CompileGate::CompileGate(CompileGateLimits limits) : limits_(limits) {
  // validate() refuses zeros in the configuration; a gate that admits nothing would hang callers.
  if (limits_.slots == 0 || limits_.per_tenant == 0) throw std::invalid_argument("compile gate: zero slots");
}

CompileGate::Ticket::~Ticket() {
  if (gate_) gate_->leave(tenant_);
}

bool CompileGate::chosen_locked(const std::string& tenant, std::uint64_t ticket) const {
  if (running_ >= limits_.slots) return false;
  // The best waiting tenant: fewest running (under its cap), then the oldest head of queue.
  const std::string* best = nullptr;
  const TenantState* best_state = nullptr;
  for (const auto& [name, state] : tenants_) {
    if (state.waiting.empty() || state.running >= limits_.per_tenant) continue;
    if (!best_state || state.running < best_state->running ||
        (state.running == best_state->running && state.waiting.front() < best_state->waiting.front())) {
      best = &name;
      best_state = &state;
    }
  }
  return best && *best == tenant && best_state->waiting.front() == ticket;
}

CompileGate::Admission CompileGate::enter(const std::string& tenant, Clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  TenantState& state = tenants_[tenant];
  if (state.waiting.size() >= limits_.queued_per_tenant &&
      (state.running >= limits_.per_tenant || running_ >= limits_.slots))
    return {std::nullopt, Refusal::tenant_queue_full};
  const std::uint64_t ticket = ++arrivals_;
  state.waiting.push_back(ticket);
  const bool admitted = changed_.wait_until(lock, deadline, [&] { return chosen_locked(tenant, ticket); });
  // `state` stays valid: an entry is erased only when it has nothing running and nobody waiting.
  state.waiting.erase(std::find(state.waiting.begin(), state.waiting.end(), ticket));
  if (!admitted) {
    if (state.running == 0 && state.waiting.empty()) tenants_.erase(tenant);
    lock.unlock();
    changed_.notify_all();  // this waiter may have been the head another tenant's choice hinged on
    return {std::nullopt, Refusal::timed_out};
  }
  ++state.running;
  ++running_;
  lock.unlock();
  changed_.notify_all();  // the next in line of another tenant may be chosen now
  return {Ticket(this, tenant), {}};
}

void CompileGate::leave(const std::string& tenant) noexcept {
  {
    std::lock_guard lock(mutex_);
    auto it = tenants_.find(tenant);
    if (it != tenants_.end()) {
      --it->second.running;
      if (it->second.running == 0 && it->second.waiting.empty()) tenants_.erase(it);
    }
    --running_;
  }
  changed_.notify_all();
}

unsigned CompileGate::running(const std::string& tenant) const {
  std::lock_guard lock(mutex_);
  auto it = tenants_.find(tenant);
  return it == tenants_.end() ? 0 : it->second.running;
}

unsigned CompileGate::waiting(const std::string& tenant) const {
  std::lock_guard lock(mutex_);
  auto it = tenants_.find(tenant);
  return it == tenants_.end() ? 0 : static_cast<unsigned>(it->second.waiting.size());
}

unsigned CompileGate::running() const {
  std::lock_guard lock(mutex_);
  return running_;
}

unsigned CompileGate::waiting() const {
  std::lock_guard lock(mutex_);
  unsigned n = 0;
  for (const auto& [name, state] : tenants_) n += static_cast<unsigned>(state.waiting.size());
  return n;
}

}  // namespace kiln::service::detail
