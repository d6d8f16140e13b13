// How many connections kilnd holds, in total and per client address: a connection is admitted
// with a Ticket, and its slot is given back when the ticket goes. One client (address) can then
// take at most its share, and the total bounds the descriptors and memory idle connections cost.
//
// Thread safety: admit() from any thread; a Ticket may be destroyed on any thread.
#pragma once

#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace kiln::service::http {

class ConnectionLimits {
 public:
  ConnectionLimits(std::size_t max_total, std::size_t max_per_address) noexcept
      : max_total_(max_total), max_per_address_(max_per_address) {}
  ConnectionLimits(const ConnectionLimits&) = delete;
  ConnectionLimits& operator=(const ConnectionLimits&) = delete;

  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& o) noexcept : limits_(o.limits_), address_(std::move(o.address_)) { o.limits_ = nullptr; }
    Ticket& operator=(Ticket&& o) noexcept;
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    ~Ticket() { release(); }
    explicit operator bool() const noexcept { return limits_ != nullptr; }

   private:
    friend class ConnectionLimits;
    Ticket(ConnectionLimits* limits, std::string address) : limits_(limits), address_(std::move(address)) {}
    void release() noexcept;
    ConnectionLimits* limits_ = nullptr;
    std::string address_;
  };

  enum class Refusal { none, total, per_address };

  // A ticket when `address` (any bytes naming the client) may open one more connection; otherwise
  // an empty one, and `why` says which limit refused it.
  Ticket admit(const std::string& address, Refusal& why);

  std::size_t open() const;
  std::size_t open_from(const std::string& address) const;
  std::size_t max_total() const noexcept { return max_total_; }
  std::size_t max_per_address() const noexcept { return max_per_address_; }

 private:
  void release(const std::string& address) noexcept;

  const std::size_t max_total_, max_per_address_;
  mutable std::mutex mutex_;
  std::size_t open_ = 0;
  std::unordered_map<std::string, std::size_t> by_address_;
};

}  // namespace kiln::service::http
