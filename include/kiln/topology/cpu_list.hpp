// A set of CPU (or NUMA node) numbers, read from and written as the kernel's list syntax
// ("0-15,32-47", as in local_cpulist and nvidia-smi's CPU affinity column).
//
// Thread safety: a value type; const objects may be shared freely.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kiln::topology {

class CpuList {
 public:
  CpuList() = default;
  explicit CpuList(std::vector<int> ids);  // sorted and deduplicated here

  // "0-3,8,10-11"; an empty or all-blank text is the empty list. Throws kiln::Error
  // (invalid_argument) naming `text` on anything else.
  static CpuList parse(std::string_view text);
  // A hex mask as in local_cpus: "ffff" or "00000000,0000ffff" (32-bit groups, most significant
  // first). Throws kiln::Error naming `text` when it is not one.
  static CpuList parse_mask(std::string_view text);

  const std::vector<int>& ids() const noexcept { return ids_; }
  bool empty() const noexcept { return ids_.empty(); }
  std::size_t size() const noexcept { return ids_.size(); }
  bool contains(int id) const noexcept;
  bool intersects(const CpuList& other) const noexcept;
  CpuList intersection(const CpuList& other) const;

  std::string to_string() const;  // "0-3,8,10-11"; "" when empty

  friend bool operator==(const CpuList&, const CpuList&) = default;

 private:
  std::vector<int> ids_;
};

}  // namespace kiln::topology
