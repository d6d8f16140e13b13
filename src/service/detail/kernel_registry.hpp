// The kernels tenants registered: id -> owner, program and compiled images (one per architecture).
// A tenant sees only its own: find() and remove() answer "absent" for another tenant's id.
//
// Thread safety: every member may be called from any thread; a shared_mutex lets lookups (every
// launch) run side by side, registration and removal take it alone for a map insert or erase.
#pragma once

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "kiln/jit/artifact.hpp"
#include "kiln/jit/program.hpp"

namespace kiln::service::detail {

// One compiled image, and its bytes as the backend takes them (PTX with its terminating NUL),
// made once so a launch copies a pointer, not the image.
struct CompiledImage {
  jit::Artifact artifact;
  std::shared_ptr<const std::string> bytes;
};

struct RegisteredKernel {
  std::uint64_t id = 0;
  std::string tenant;
  jit::Program program;
  // The device libraries its images link (in order): an image for another architecture links them
  // again. Empty: compiled alone.
  std::vector<std::string> libraries;
  std::map<int, CompiledImage> images;  // by the device architecture they serve

  // Whether the image names `symbol`: a search through the whole image the first time (a CUB
  // kernel's CUBIN is hundreds of KB), remembered after that. Thread-safe.
  bool has_symbol(const std::string& symbol) const {
    {
      std::lock_guard lock(symbols_mutex);
      if (known_symbols.contains(symbol)) return true;
    }
    if (images.empty() || images.begin()->second.bytes->find(symbol) == std::string::npos) return false;
    std::lock_guard lock(symbols_mutex);
    known_symbols.insert(symbol);
    return true;
  }

  RegisteredKernel() = default;
  RegisteredKernel(const RegisteredKernel& o)
      : id(o.id), tenant(o.tenant), program(o.program), libraries(o.libraries), images(o.images) {}
  RegisteredKernel& operator=(const RegisteredKernel&) = delete;
  RegisteredKernel(RegisteredKernel&& o)
      : id(o.id), tenant(std::move(o.tenant)), program(std::move(o.program)), libraries(std::move(o.libraries)),
        images(std::move(o.images)) {}

 private:
  mutable std::mutex symbols_mutex;
  mutable std::set<std::string> known_symbols;
};

class KernelRegistry {
 public:
  // nullptr when the tenant holds `limit` kernels already.
  std::shared_ptr<const RegisteredKernel> add(RegisteredKernel kernel, std::size_t limit) {
    std::unique_lock lock(mutex_);
    auto& count = per_tenant_[kernel.tenant];
    if (count >= limit) return nullptr;
    ++count;
    kernel.id = next_id_++;
    auto shared = std::make_shared<const RegisteredKernel>(std::move(kernel));
    kernels_.emplace(shared->id, shared);
    return shared;
  }
  std::shared_ptr<const RegisteredKernel> find(std::uint64_t id, std::string_view tenant) const {
    std::shared_lock lock(mutex_);
    auto it = kernels_.find(id);
    if (it == kernels_.end() || it->second->tenant != tenant) return nullptr;
    return it->second;
  }
  // Replaces a kernel's record (an image for a new architecture was added).
  void update(std::shared_ptr<const RegisteredKernel> kernel) {
    std::unique_lock lock(mutex_);
    if (auto it = kernels_.find(kernel->id); it != kernels_.end()) it->second = std::move(kernel);
  }
  bool remove(std::uint64_t id, std::string_view tenant) {
    std::unique_lock lock(mutex_);
    auto it = kernels_.find(id);
    if (it == kernels_.end() || it->second->tenant != tenant) return false;
    if (--per_tenant_[it->second->tenant] == 0) per_tenant_.erase(it->second->tenant);
    kernels_.erase(it);
    return true;
  }
  // The tenant's kernels with ids above `after`, in increasing id order, at most `limit`.
  std::vector<std::shared_ptr<const RegisteredKernel>> list(std::string_view tenant, std::uint64_t after,
                                                            std::size_t limit) const {
    std::vector<std::shared_ptr<const RegisteredKernel>> out;
    {
      std::shared_lock lock(mutex_);
      for (const auto& [id, kernel] : kernels_)
        if (id > after && kernel->tenant == tenant) out.push_back(kernel);
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->id < b->id; });
    if (out.size() > limit) out.resize(limit);
    return out;
  }
  std::size_t size() const {
    std::shared_lock lock(mutex_);
    return kernels_.size();
  }

 private:
  mutable std::shared_mutex mutex_;
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, std::shared_ptr<const RegisteredKernel>> kernels_;
  std::unordered_map<std::string, std::size_t> per_tenant_;
};

}  // namespace kiln::service::detail
