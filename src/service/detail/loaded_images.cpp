#include "service/detail/loaded_images.hpp"

namespace kiln::service::detail {

bool LoadedImages::touch(const std::string& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return false;
  order_.splice(order_.begin(), order_, it->second);
  return true;
}

std::vector<std::string> LoadedImages::add(const std::string& key, std::size_t bytes) {
  if (auto it = index_.find(key); it != index_.end()) {
    bytes_ -= it->second->bytes;
    it->second->bytes = bytes;
    order_.splice(order_.begin(), order_, it->second);
  } else {
    order_.push_front(Entry{key, bytes});
    index_.emplace(key, order_.begin());
  }
  bytes_ += bytes;
  std::vector<std::string> evicted;
  while (order_.size() > 1 && (order_.size() > limits_.max_images || bytes_ > limits_.max_bytes)) {
    Entry& last = order_.back();
    bytes_ -= last.bytes;
    index_.erase(last.key);
    evicted.push_back(std::move(last.key));
    order_.pop_back();
  }
  return evicted;
}

bool LoadedImages::forget(const std::string& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return false;
  bytes_ -= it->second->bytes;
  order_.erase(it->second);
  index_.erase(it);
  return true;
}

void LoadedImages::clear() noexcept {
  order_.clear();
  index_.clear();
  bytes_ = 0;
}

}  // namespace kiln::service::detail
