// Little-endian byte encoding shared by the disk entry format and the compile worker's protocol:
// fixed-size values and length-prefixed strings appended to a std::string, and a reader that
// never reads past its input (a short input marks it bad and later reads return zeros/empties).
//
// Thread safety: ByteReader is a plain value used by one thread; the writers are free functions.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

namespace kiln::jit::detail {

static_assert(std::endian::native == std::endian::little, "kiln encodes little-endian");

template <class T>
void put(std::string& out, T value) {
  static_assert(std::is_trivially_copyable_v<T>);
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

inline void put_string(std::string& out, std::string_view s) {
  put<std::uint64_t>(out, s.size());
  out.append(s);
}

class ByteReader {
 public:
  explicit ByteReader(std::string_view bytes) : rest_(bytes) {}

  template <class T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    T value{};
    if (rest_.size() < sizeof value) {
      bad_ = true;
      return value;
    }
    std::memcpy(&value, rest_.data(), sizeof value);
    rest_.remove_prefix(sizeof value);
    return value;
  }

  std::string get_string() {
    const auto size = get<std::uint64_t>();
    if (bad_ || rest_.size() < size) {
      bad_ = true;
      return {};
    }
    std::string s(rest_.substr(0, size));
    rest_.remove_prefix(size);
    return s;
  }

  // A count of items that each take at least `min_item_bytes`: refused (bad) when the input
  // cannot hold that many, so a corrupt count cannot make the caller loop or allocate forever.
  std::uint64_t get_count(std::size_t min_item_bytes) {
    const auto n = get<std::uint64_t>();
    if (bad_ || (min_item_bytes > 0 && n > rest_.size() / min_item_bytes)) {
      bad_ = true;
      return 0;
    }
    return n;
  }

  bool bad() const noexcept { return bad_; }
  bool ok_and_done() const noexcept { return !bad_ && rest_.empty(); }

 private:
  std::string_view rest_;
  bool bad_ = false;
};

}  // namespace kiln::jit::detail
