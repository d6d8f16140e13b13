// The supervisor's record of which kernel images one GPU worker incarnation has loaded, by image
// key, most recently used first. The supervisor sends an image's bytes (a load_image frame) only
// when its key is missing here, and tells the worker to unload (forget_image) every key this
// record evicts, so the worker's module cache is exactly this set and stays within its bound:
// at most `max_images` images and `max_bytes` bytes of images (the defaults: 256 and 512 MiB);
// an image larger than max_bytes on its own is still admitted, alone. A new worker starts with an
// empty record.
//
// Thread safety: a plain value; the WorkerPool guards it with its slot's mutex.
#pragma once

#include <cstddef>
#include <list>
#include <string>
#include <unordered_map>
#include <vector>

namespace kiln::service::detail {

struct LoadedImageLimits {
  std::size_t max_images = 256;
  std::size_t max_bytes = std::size_t{512} << 20;
};

class LoadedImages {
 public:
  LoadedImages() = default;
  explicit LoadedImages(LoadedImageLimits limits) : limits_(limits) {}

  // True when `key` is loaded; it becomes the most recently used.
  bool touch(const std::string& key);
  // Records `key` (of `bytes`) as loaded and most recently used; returns the keys evicted to stay
  // within the limits, least recently used first (never `key` itself). Adding a loaded key
  // updates its size.
  std::vector<std::string> add(const std::string& key, std::size_t bytes);
  // Drops `key` (the worker said it does not hold it); false when it was not recorded.
  bool forget(const std::string& key);
  void clear() noexcept;

  bool contains(const std::string& key) const { return index_.count(key) != 0; }
  std::size_t size() const noexcept { return index_.size(); }
  std::size_t bytes() const noexcept { return bytes_; }
  const LoadedImageLimits& limits() const noexcept { return limits_; }

 private:
  struct Entry {
    std::string key;
    std::size_t bytes = 0;
  };
  LoadedImageLimits limits_;
  std::list<Entry> order_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  std::size_t bytes_ = 0;
};

}  // namespace kiln::service::detail
