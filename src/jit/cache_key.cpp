#include "kiln/jit/cache_key.hpp"

#include <algorithm>
#include <charconv>

#include "jit/detail/key_bytes.hpp"
#include "jit/detail/sha256.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/jit/compiler.hpp"
#include "kiln/jit/nvrtc_facts.hpp"

namespace kiln::jit {
namespace {

// Each field is tagged and length-prefixed, so no two different inputs serialise alike. The fields
// are gathered into one buffer and hashed at once: one digest call instead of three per field
// (each EVP call costs ~45 ns, more than hashing a small field). The bytes hashed are the same as
// when each field was fed to the digest in turn, so keys (and disk entries) are unchanged.
class KeyWriter {
 public:
  KeyWriter() : bytes_(buffer()) { bytes_.clear(); }
  void field(char tag, std::string_view bytes) {
    const std::uint64_t size = bytes.size();
    bytes_.push_back(tag);
    bytes_.append(reinterpret_cast<const char*>(&size), sizeof size);
    bytes_.append(bytes);
  }
  void number(char tag, std::int64_t value) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
    field(tag, std::string_view(digits, static_cast<std::size_t>(end - digits)));
  }
  std::string_view bytes() const { return bytes_; }

 private:
  // Reused by each thread, so a key computes without allocating once the buffer has grown.
  static std::string& buffer() {
    thread_local std::string bytes;
    return bytes;
  }
  std::string& bytes_;
};

std::string_view define_name(std::string_view define) { return define.substr(0, define.find('=')); }

}  // namespace

std::string CacheKey::hex() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(64, '0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    s[2 * i] = kDigits[bytes[i] >> 4];
    s[2 * i + 1] = kDigits[bytes[i] & 15];
  }
  return s;
}

CacheKey CacheKey::from_hex(std::string_view text) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  CacheKey key;
  bool ok = text.size() == 64;
  for (std::size_t i = 0; ok && i < 32; ++i) {
    int hi = nibble(text[2 * i]), lo = nibble(text[2 * i + 1]);
    ok = hi >= 0 && lo >= 0;
    key.bytes[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  if (!ok) throw Error(Errc::invalid_argument, "'" + std::string(text) + "' is not a cache key (64 hex digits)");
  return key;
}

KeyContext KeyContext::current(const std::filesystem::path& cache_dir) {
  return KeyContext{nvrtc_facts(cache_dir).cuda_version(), toolkit_include_dirs()};
}

KeyContext KeyContext::current() { return KeyContext{nvrtc_facts().cuda_version(), toolkit_include_dirs()}; }

CacheKey cache_key(const Program& program, const Target& target) {
  return cache_key(program, target, KeyContext::current());
}

CacheKey cache_key(const Program& program, const Target& target, const KeyContext& context) {
  return CacheKey{detail::sha256(detail::key_bytes(program, target, context))};
}

std::string_view detail::key_bytes(const Program& program, const Target& target, const KeyContext& context) {
  KeyWriter w;
  w.number('F', kCacheFormatVersion);
  w.number('V', context.nvrtc_cuda_version);
  for (const auto& dir : context.toolkit_dirs) w.field('T', dir);
  w.field('K', to_string(target.kind));
  w.number('A', target.arch);
  w.field('N', program.name);  // __FILE__ and diagnostics name it
  w.field('S', program.source);
  for (const auto& [name, text] : program.headers) {  // std::map: sorted by name
    w.field('h', name);
    w.field('H', text);
  }
  for (const auto& dir : program.include_dirs) w.field('I', dir);  // search order matters

  const CompileOptions& o = program.options;
  w.field('s', o.standard);
  // Defines commute except for one name defined twice: sort by name, keep same-name order.
  std::vector<std::string_view> defines(o.defines.begin(), o.defines.end());
  std::stable_sort(defines.begin(), defines.end(),
                   [](std::string_view a, std::string_view b) { return define_name(a) < define_name(b); });
  for (auto d : defines) w.field('D', d);
  w.number('l', o.line_info);
  w.number('f', o.fast_math);
  w.number('r', o.max_registers);
  w.number('R', o.relocatable_device_code);
  if (o.minimal) w.number('m', 1);  // only when set: keys of programs without it stay as they were
  for (const auto& e : o.extra) w.field('X', e);  // raw options: order may matter

  // Lowered names do not depend on the order the expressions were added in.
  std::vector<std::string_view> names(program.name_expressions.begin(), program.name_expressions.end());
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  for (auto n : names) w.field('E', n);
  return w.bytes();
}

}  // namespace kiln::jit
