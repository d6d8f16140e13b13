#include "kiln/jit/nvrtc_facts.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>

#include "jit/detail/sha256.hpp"
#include "kiln/driver/nvrtc_api.hpp"
#include "kiln/jit/disk_cache.hpp"

namespace kiln::jit {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kHeader = "kiln nvrtc facts 1\n";
constexpr std::string_view kSumPrefix = "sha256=";
constexpr std::size_t kMaxRecordBytes = 64 << 10;

std::string hex(const detail::Digest& digest) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (std::uint8_t b : digest) {
    s += kDigits[b >> 4];
    s += kDigits[b & 15];
  }
  return s;
}

// The identity as the record spells it; also what the record's file name is the hash of.
std::string identity_text(const LibraryIdentity& library) {
  std::ostringstream out;
  out << "path=" << library.path << "\nsize=" << library.size << "\nmtime_ns=" << library.mtime_ns
      << "\nctime_ns=" << library.ctime_ns << "\ninode=" << library.inode << "\ndevice=" << library.device << "\n";
  return out.str();
}

// A record's text can hold any path but one with a line break.
bool recordable(const LibraryIdentity& library) { return library.path.find('\n') == std::string::npos; }

std::string facts_text(const NvrtcFacts& facts) {
  std::ostringstream out;
  out << "version=" << facts.version_major << "." << facts.version_minor << "\narchs=";
  for (std::size_t i = 0; i < facts.supported_archs.size(); ++i) out << (i ? " " : "") << facts.supported_archs[i];
  out << "\n";
  return out.str();
}

// "<name>=<value>\n" at the front of `text`: the value, and `text` moved past the line.
std::optional<std::string_view> take_line(std::string_view& text, std::string_view name) {
  if (!text.starts_with(name) || text.size() <= name.size() || text[name.size()] != '=') return std::nullopt;
  const auto end = text.find('\n');
  if (end == std::string_view::npos) return std::nullopt;
  std::string_view value = text.substr(name.size() + 1, end - name.size() - 1);
  text.remove_prefix(end + 1);
  return value;
}

bool parse_int(std::string_view text, int& value) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

std::optional<NvrtcFacts> parse_facts(std::string_view text) {
  NvrtcFacts facts;
  auto version = take_line(text, "version");
  auto archs = take_line(text, "archs");
  if (!version || !archs || !text.empty()) return std::nullopt;
  const auto dot = version->find('.');
  if (dot == std::string_view::npos || !parse_int(version->substr(0, dot), facts.version_major) ||
      !parse_int(version->substr(dot + 1), facts.version_minor) || facts.version_major <= 0 ||
      facts.version_minor < 0)
    return std::nullopt;
  for (std::string_view rest = *archs; !rest.empty();) {
    const auto space = rest.find(' ');
    int arch = 0;
    if (!parse_int(rest.substr(0, space), arch) || arch <= 0) return std::nullopt;
    facts.supported_archs.push_back(arch);
    if (space == std::string_view::npos) break;
    rest.remove_prefix(space + 1);
    if (rest.empty()) return std::nullopt;  // a trailing space: not what write_nvrtc_facts writes
  }
  return facts;
}

// What this process knows; one lock, held also while NVRTC loads (the others want the same answer).
struct ProcessFacts {
  std::mutex mutex;
  bool known = false;
  NvrtcFacts facts;
  std::optional<LibraryIdentity> library;  // the file `facts` describe
  bool from_library = false;               // read from the loaded NVRTC itself
};

ProcessFacts& process_facts() {
  static ProcessFacts p;
  return p;
}

NvrtcFacts loaded_facts(ProcessFacts& p, const fs::path& cache_dir) {
  const driver::NvrtcLibrary& nvrtc = driver::nvrtc_library();  // loads NVRTC unless already loaded
  if (!p.from_library) {
    p.facts = NvrtcFacts{nvrtc.version.major, nvrtc.version.minor, nvrtc.supported_archs};
    p.library = LibraryIdentity::of(nvrtc.library.path);
    p.known = p.from_library = true;
  }
  // Checked on every call (a read of a few hundred bytes, next to a compile or a cache's start): the
  // folder may have been emptied since the last one.
  if (p.library) {
    const std::optional<NvrtcFacts> recorded = read_nvrtc_facts(cache_dir, *p.library);
    if (!recorded || *recorded != p.facts) write_nvrtc_facts(cache_dir, *p.library, p.facts);
  }
  return p.facts;
}

}  // namespace

std::optional<LibraryIdentity> LibraryIdentity::of(const std::string& path) {
  std::error_code ec;
  const fs::path real = fs::canonical(path, ec);
  struct stat st {};
  if (ec || ::stat(real.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  LibraryIdentity id;
  id.path = real.string();
  id.size = static_cast<std::uint64_t>(st.st_size);
  id.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  id.ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
  id.inode = static_cast<std::uint64_t>(st.st_ino);
  id.device = static_cast<std::uint64_t>(st.st_dev);
  return id;
}

fs::path nvrtc_facts_path(const fs::path& cache_dir, const LibraryIdentity& library) {
  return cache_dir / "nvrtc-facts" / hex(detail::sha256(identity_text(library)));
}

std::optional<NvrtcFacts> read_nvrtc_facts(const fs::path& cache_dir, const LibraryIdentity& library) {
  if (!recordable(library)) return std::nullopt;
  try {
    std::ifstream in(nvrtc_facts_path(cache_dir, library), std::ios::binary);
    if (!in) return std::nullopt;
    std::string text;
    text.resize(kMaxRecordBytes + 1);
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxRecordBytes || text.size() < kHeader.size() + 2 || !text.ends_with('\n'))
      return std::nullopt;

    // The last line is the SHA-256 of everything before it.
    const auto last = text.rfind('\n', text.size() - 2);
    if (last == std::string::npos) return std::nullopt;
    std::string_view body(text.data(), last + 1);
    std::string_view sum(text.data() + last + 1, text.size() - last - 2);
    if (!sum.starts_with(kSumPrefix) || sum.substr(kSumPrefix.size()) != hex(detail::sha256(body)))
      return std::nullopt;

    // About this very file (not another whose identity hashed alike, nor a copied record).
    const std::string expected = std::string(kHeader) + identity_text(library);
    if (!body.starts_with(expected)) return std::nullopt;
    body.remove_prefix(expected.size());
    return parse_facts(body);
  } catch (const std::exception&) {
    return std::nullopt;  // out of memory or a stream error: the record only saves time
  }
}

bool write_nvrtc_facts(const fs::path& cache_dir, const LibraryIdentity& library, const NvrtcFacts& facts) {
  if (!recordable(library)) return false;
  try {
    const fs::path path = nvrtc_facts_path(cache_dir, library);
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    if (ec) return false;
    std::string text = std::string(kHeader) + identity_text(library) + facts_text(facts);
    text += std::string(kSumPrefix) + hex(detail::sha256(text)) + "\n";

    // The temporary file sits beside the record so that rename() replaces it atomically.
    std::string temp = (path.parent_path() / (".tmp-" + path.filename().string() + "-XXXXXX")).string();
    const int fd = ::mkstemp(temp.data());
    if (fd < 0) return false;
    ::fchmod(fd, 0644);
    bool ok = true;
    for (std::string_view rest = text; ok && !rest.empty();) {
      const ssize_t n = ::write(fd, rest.data(), rest.size());
      if (n < 0 && errno == EINTR) continue;
      ok = n > 0;
      if (ok) rest.remove_prefix(static_cast<std::size_t>(n));
    }
    ok = ::close(fd) == 0 && ok;
    if (!ok || ::rename(temp.c_str(), path.c_str()) != 0) {
      ::unlink(temp.c_str());
      return false;
    }
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

NvrtcFacts nvrtc_facts(const fs::path& cache_dir) {
  ProcessFacts& p = process_facts();
  std::lock_guard lock(p.mutex);
  if (driver::nvrtc_loaded()) return loaded_facts(p, cache_dir);
  if (p.known) return p.facts;
  if (const std::optional<std::string> file = driver::nvrtc_location())
    if (auto library = LibraryIdentity::of(*file))
      if (auto facts = read_nvrtc_facts(cache_dir, *library)) {
        p.library = std::move(library);
        p.facts = std::move(*facts);
        p.known = true;
        return p.facts;
      }
  return loaded_facts(p, cache_dir);  // no usable record: ask NVRTC itself
}

NvrtcFacts nvrtc_facts() { return nvrtc_facts(DiskCache::default_directory()); }

}  // namespace kiln::jit
