#include "http/connection_limits.hpp"

namespace kiln::service::http {

ConnectionLimits::Ticket& ConnectionLimits::Ticket::operator=(Ticket&& o) noexcept {
  if (this != &o) {
    release();
    limits_ = o.limits_;
    address_ = std::move(o.address_);
    o.limits_ = nullptr;
  }
  return *this;
}

void ConnectionLimits::Ticket::release() noexcept {
  if (limits_) limits_->release(address_);
  limits_ = nullptr;
}

ConnectionLimits::Ticket ConnectionLimits::admit(const std::string& address, Refusal& why) {
  std::lock_guard lock(mutex_);
  if (open_ >= max_total_) {
    why = Refusal::total;
    return {};
  }
  std::size_t& mine = by_address_[address];
  if (mine >= max_per_address_) {
    if (mine == 0) by_address_.erase(address);
    why = Refusal::per_address;
    return {};
  }
  ++mine;
  ++open_;
  why = Refusal::none;
  return Ticket(this, address);
}

void ConnectionLimits::release(const std::string& address) noexcept {
  std::lock_guard lock(mutex_);
  --open_;
  if (auto it = by_address_.find(address); it != by_address_.end() && --it->second == 0) by_address_.erase(it);
}

std::size_t ConnectionLimits::open() const {
  std::lock_guard lock(mutex_);
  return open_;
}

std::size_t ConnectionLimits::open_from(const std::string& address) const {
  std::lock_guard lock(mutex_);
  auto it = by_address_.find(address);
  return it == by_address_.end() ? 0 : it->second;
}

}  // namespace kiln::service::http
