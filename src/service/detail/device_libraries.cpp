#include "detail/device_libraries.hpp"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "kiln/driver/error.hpp"

namespace kiln::service::detail {

namespace {

constexpr unsigned char kLtoirMagic[4] = {0xed, 0x43, 0x4e, 0x7f};  // 0x7F4E43ED, little-endian

[[noreturn]] void fail(const std::string& setting, const std::string& what) {
  throw Error(Errc::invalid_argument, "invalid setting: " + setting + ": " + what);
}

std::string read_file(const std::filesystem::path& file, const std::string& setting) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) fail(setting, "'" + file.string() + "' is not a readable file");
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(setting, "cannot read '" + file.string() + "'");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  std::string out = std::move(bytes).str();
  if (out.empty()) fail(setting, "'" + file.string() + "' is empty");
  return out;
}

}  // namespace

bool looks_like_ltoir(std::string_view bytes) noexcept {
  return bytes.size() >= 28 && std::memcmp(bytes.data(), kLtoirMagic, sizeof kLtoirMagic) == 0;
}

std::optional<int> ltoir_arch(std::string_view bytes) noexcept {
  if (!looks_like_ltoir(bytes)) return std::nullopt;
  const int tenfold = static_cast<unsigned char>(bytes[26]) | (static_cast<unsigned char>(bytes[27]) << 8);
  if (tenfold % 10 != 0 || tenfold < 300 || tenfold > 10000) return std::nullopt;
  return tenfold / 10;
}

bool DeviceLibraryEntry::admits(std::string_view tenant) const {
  return !tenants_ || std::find(tenants_->begin(), tenants_->end(), tenant) != tenants_->end();
}

const jit::DeviceLibrary& DeviceLibraryEntry::for_arch(int arch) const {
  if (prebuilt_ && prebuilt_arch_ == arch) return *prebuilt_;
  if (source_) return *source_;
  throw Error(Errc::invalid_argument, "device library '" + name_ + "' is LTO-IR for sm_" + std::to_string(prebuilt_arch_) +
                                          " only; it cannot link into sm_" + std::to_string(arch) +
                                          " (configure its \"source\" too, or LTO-IR for that architecture)");
}

std::vector<std::string> DeviceLibraryEntry::header_names() const {
  std::vector<std::string> out;
  for (const auto& [name, text] : headers_) out.push_back(name);
  return out;
}

DeviceLibraries::DeviceLibraries(const std::map<std::string, DeviceLibraryConfig>& config) {
  for (const auto& [name, c] : config) {
    const std::string where = "device_libraries." + name;
    DeviceLibraryEntry e;
    e.name_ = name;
    e.tenants_ = c.tenants;
    for (const auto& [include, file] : c.headers) e.headers_[include] = read_file(file, where + ".headers." + include);
    // The digest's input: every byte that changes what the library links as.
    jit::Program identity;
    identity.name = name;
    identity.headers = e.headers_;
    if (!c.ltoir.empty()) {
      std::string bytes = read_file(c.ltoir, where + ".ltoir");
      if (!looks_like_ltoir(bytes))
        fail(where + ".ltoir", "'" + c.ltoir.string() + "' is not LTO-IR (build it with `kiln compile --lto FILE.cu -o " +
                                   c.ltoir.filename().string() + "`)");
      int arch = c.arch;
      if (arch == 0) {
        const std::optional<int> found = ltoir_arch(bytes);
        if (!found) fail(where + ".arch", "the architecture of '" + c.ltoir.string() + "' cannot be read from it; give \"arch\"");
        arch = *found;
      }
      e.ltoir_bytes_ = bytes.size();
      e.prebuilt_arch_ = arch;
      identity.source += "ltoir " + jit::LinkInput::from_bytes(jit::LinkInputKind::ltoir, name, bytes).identity().hex() +
                         " sm_" + std::to_string(arch) + "\n";
      e.prebuilt_ = jit::DeviceLibrary::from_ltoir(name, arch, std::move(bytes), e.headers_);
    }
    if (!c.source.empty()) {
      jit::Program program;
      program.name = name + ".cu";
      program.source = read_file(c.source, where + ".source");
      program.options = c.options;
      e.source_bytes_ = program.source.size();
      identity.source += "source\n" + program.source;
      identity.options = c.options;
      e.source_ = jit::DeviceLibrary::from_program(std::move(program), e.headers_);
    }
    e.digest_ = jit::cache_key(identity, jit::Target::for_arch(90, jit::ImageKind::ltoir), jit::KeyContext{}).hex();
    libraries_.emplace(name, std::move(e));
  }
}

const DeviceLibraryEntry* DeviceLibraries::find(std::string_view name, std::string_view tenant) const {
  auto it = libraries_.find(name);
  if (it == libraries_.end() || !it->second.admits(tenant)) return nullptr;
  return &it->second;
}

std::vector<const DeviceLibraryEntry*> DeviceLibraries::visible_to(std::string_view tenant) const {
  std::vector<const DeviceLibraryEntry*> out;
  for (const auto& [name, e] : libraries_)
    if (e.admits(tenant)) out.push_back(&e);
  return out;
}

}  // namespace kiln::service::detail
