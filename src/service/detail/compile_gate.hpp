// Admission of kernel compiles, fair between tenants. At most `slots` compiles run at once (one a
// compile worker), a tenant has at most `per_tenant` of them running and `queued_per_tenant` more
// waiting (beyond that a registration is refused at once, so one tenant's flood cannot hold every
// HTTP thread either). A freed slot goes to the waiting tenant with the fewest compiles running,
// the longest waiting among equals: a tenant's flood waits behind its own work, and another
// tenant's compile starts as soon as a slot is free.
//
// Thread safety: every member may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace kiln::service::detail {

struct CompileGateLimits {
  unsigned slots = 2;
  unsigned per_tenant = 1;
  unsigned queued_per_tenant = 4;
};

class CompileGate {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Refusal { tenant_queue_full, timed_out };

  // Holds one slot; gives it back when destroyed.
  class Ticket {
   public:
    Ticket(Ticket&& other) noexcept : gate_(std::exchange(other.gate_, nullptr)), tenant_(std::move(other.tenant_)) {}
    Ticket& operator=(Ticket&&) = delete;
    Ticket(const Ticket&) = delete;
    ~Ticket();

   private:
    friend class CompileGate;
    Ticket(CompileGate* gate, std::string tenant) : gate_(gate), tenant_(std::move(tenant)) {}
    CompileGate* gate_;
    std::string tenant_;
  };

  struct Admission {
    std::optional<Ticket> ticket;  // set when admitted
    Refusal refusal{};             // why not, otherwise
  };

  explicit CompileGate(CompileGateLimits limits);
  CompileGate(const CompileGate&) = delete;
  CompileGate& operator=(const CompileGate&) = delete;

  // Waits for a slot until `deadline`; refuses at once when the tenant already has
  // queued_per_tenant compiles waiting.
  Admission enter(const std::string& tenant, Clock::time_point deadline);

  const CompileGateLimits& limits() const noexcept { return limits_; }
  unsigned running(const std::string& tenant) const;
  unsigned waiting(const std::string& tenant) const;
  unsigned running() const;
  unsigned waiting() const;

 private:
  struct TenantState {
    unsigned running = 0;
    std::deque<std::uint64_t> waiting;  // arrival numbers, oldest first
  };
  // Whether `ticket` (the arrival number of a waiter of `tenant`) is the one to admit now.
  bool chosen_locked(const std::string& tenant, std::uint64_t ticket) const;
  void leave(const std::string& tenant) noexcept;

  const CompileGateLimits limits_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, TenantState, std::less<>> tenants_;
  unsigned running_ = 0;
  std::uint64_t arrivals_ = 0;
};

}  // namespace kiln::service::detail
