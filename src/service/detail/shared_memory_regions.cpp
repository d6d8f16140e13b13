#include "detail/shared_memory_regions.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "kiln/ipc/pidfd.hpp"

namespace kiln::service::detail {

std::string shared_memory_name_problem(std::string_view name) {
  if (name.size() < 2 || name.front() != '/')
    return "must start with '/' and name an object, as shm_open() takes it (\"/my-region\")";
  if (name.size() > 255) return "is longer than 255 characters";
  for (char c : name.substr(1)) {
    if (c == '/') return "may hold no '/' after the first (a shared memory object is not a path)";
    if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f) return "holds a control character or a space";
  }
  if (name == "/." || name == "/..") return "is not an object's name";
  return {};
}

namespace {

[[noreturn]] void refuse(std::string field, std::string message) {
  throw SharedMemoryRefusal{std::move(field), std::move(message)};
}

}  // namespace

std::shared_ptr<SharedMemoryMapping> SharedMemoryMapping::open(const std::string& name, std::uint64_t offset,
                                                               std::uint64_t bytes) {
  if (const std::string problem = shared_memory_name_problem(name); !problem.empty())
    refuse("name", "name: '" + name + "' " + problem);
  if (bytes == 0) refuse("bytes", "bytes: must be at least 1");
  // shm_open opens with O_NOFOLLOW: a link planted in /dev/shm is refused, not followed.
  ipc::UniqueFd fd(::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0));
  if (!fd) {
    const int err = errno;
    refuse("name",
           "name: cannot open the shared memory object '" + name + "' for reading and writing: " +
                    std::strerror(err) +
                    (err == ENOENT ? " (create it with shm_open(O_CREAT) and size it with ftruncate first)"
                     : err == EACCES ? " (kilnd's user needs read and write permission on it)"
                                     : ""));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    refuse("name", "name: '" + name + "' is not a shared memory object");
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (offset > size || bytes > size - offset)
    refuse("bytes", "bytes: the object '" + name + "' holds " + std::to_string(size) +
                                            " bytes, fewer than offset " + std::to_string(offset) + " + bytes " +
                                            std::to_string(bytes));
  // mmap takes a page-aligned offset: map from the page holding `offset`.
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const std::uint64_t start = offset / page * page;
  const std::uint64_t length = offset - start + bytes;
  void* base = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), static_cast<off_t>(start));
  if (base == MAP_FAILED)
    refuse("name", "name: cannot map " + std::to_string(bytes) + " bytes of '" + name +
                                            "': " + std::strerror(errno));
  std::shared_ptr<SharedMemoryMapping> m(new SharedMemoryMapping());
  m->base_ = base;
  m->mapped_bytes_ = length;
  m->data_ = static_cast<std::byte*>(base) + (offset - start);
  m->bytes_ = bytes;
  m->end_ = offset + bytes;
  m->fd_ = std::move(fd);
  return m;
}

bool SharedMemoryMapping::intact() const noexcept {
  struct stat st {};
  return ::fstat(fd_.get(), &st) == 0 && static_cast<std::uint64_t>(st.st_size) >= end_;
}

SharedMemoryMapping::~SharedMemoryMapping() {
  pinned.reset();  // unpinned before it is unmapped
  if (base_) ::munmap(base_, mapped_bytes_);
}

std::uint64_t SharedMemoryRegions::add(SharedMemoryRegion region, ipc::UniqueFd owner) {
  std::lock_guard lock(mutex_);
  sweep_locked();
  region.id = ++last_id_;
  const std::uint64_t id = region.id;
  regions_.emplace(id, Entry{std::move(region), std::move(owner)});
  return id;
}

std::optional<SharedMemoryRegion> SharedMemoryRegions::find(std::uint64_t id, std::string_view tenant) {
  std::lock_guard lock(mutex_);
  sweep_locked();
  auto it = regions_.find(id);
  if (it == regions_.end() || it->second.region.tenant != tenant) return std::nullopt;
  return it->second.region;
}

std::optional<SharedMemoryRegion> SharedMemoryRegions::remove(std::uint64_t id, std::string_view tenant) {
  std::lock_guard lock(mutex_);
  sweep_locked();
  auto it = regions_.find(id);
  if (it == regions_.end() || it->second.region.tenant != tenant) return std::nullopt;
  SharedMemoryRegion region = std::move(it->second.region);
  regions_.erase(it);
  return region;
}

std::vector<SharedMemoryRegion> SharedMemoryRegions::list(std::string_view tenant, std::uint64_t after, std::size_t limit) {
  std::lock_guard lock(mutex_);
  sweep_locked();
  std::vector<SharedMemoryRegion> out;
  for (auto it = regions_.upper_bound(after); it != regions_.end() && out.size() < limit; ++it)
    if (it->second.region.tenant == tenant) out.push_back(it->second.region);
  return out;
}

std::size_t SharedMemoryRegions::count(std::string_view tenant) {
  std::lock_guard lock(mutex_);
  sweep_locked();
  return static_cast<std::size_t>(
      std::count_if(regions_.begin(), regions_.end(), [&](const auto& e) { return e.second.region.tenant == tenant; }));
}

std::size_t SharedMemoryRegions::sweep() {
  std::lock_guard lock(mutex_);
  const std::size_t before = regions_.size();
  sweep_locked();
  return before - regions_.size();
}

void SharedMemoryRegions::clear() {
  std::lock_guard lock(mutex_);
  regions_.clear();
}

void SharedMemoryRegions::sweep_locked() {
  std::erase_if(regions_, [](const auto& e) { return ipc::process_ended(e.second.owner); });
}

}  // namespace kiln::service::detail
