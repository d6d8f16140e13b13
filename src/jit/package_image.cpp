// What a package's images say about themselves, read without a GPU: a CUBIN's ELF header and
// .nv.info.<symbol> section, PTX's .target line and .entry parameter list.
//
// The layouts below were checked against CUDA 13.0's NVRTC (readelf on CUBINs for sm_75 to sm_120):
// - e_flags: with EI_OSABI 0x41 / EI_ABIVERSION 8 (CUDA 12.8+) the SM is bits 8-15 (sm_90:
//   0x6005a04); the older ABI (EI_OSABI 0x33, version 7) kept it in bits 0-7 (sm_80: 0x500550).
// - .nv.info.<symbol>: records of {u8 format, u8 attribute, u16 value-or-size}; format 0x04 (SVAL)
//   is followed by `size` payload bytes, the others (NVAL 0x01, BVAL 0x02, HVAL 0x03) by nothing.
//   EIATTR_KPARAM_INFO (0x17) is an SVAL of 12 bytes: u32 index, u16 ordinal, u16 offset, u32 flags
//   whose bits 18-31 are the parameter's size in bytes. A kernel without parameters has none.
// - A kernel's symbol is an STT_FUNC whose st_other carries STO_CUDA_ENTRY (0x10).
#include <algorithm>
#include <charconv>
#include <cstring>

#include "kiln/jit/package.hpp"

namespace kiln::jit {
namespace {

constexpr std::uint8_t kOsAbiCudaNew = 0x41;
constexpr std::uint8_t kFormatSval = 0x04;
constexpr std::uint8_t kAttrKparamInfo = 0x17;
constexpr std::uint8_t kStoCudaEntry = 0x10;
constexpr std::uint32_t kShtSymtab = 2;
constexpr std::uint8_t kSttFunc = 2;

[[noreturn]] void unreadable(const std::string& what) { throw PackageError(PackageProblem::unreadable, "", what); }

template <typename T>
T read_le(std::string_view bytes, std::size_t offset) {
  if (offset > bytes.size() || bytes.size() - offset < sizeof(T)) unreadable("the CUBIN is truncated (ELF read past its end)");
  T value{};
  std::memcpy(&value, bytes.data() + offset, sizeof(T));  // CUBINs are little-endian, as is every host kiln runs on
  return value;
}

struct Section {
  std::uint32_t type = 0;
  std::uint64_t offset = 0, size = 0, entsize = 0;
  std::uint32_t link = 0;
  std::string_view name;
};

// The ELF64 CUBIN's sections, their names resolved, every range checked against the image.
class Elf {
 public:
  explicit Elf(std::string_view image) : image_(image) {
    if (image.size() < 64 || image.substr(0, 4) != "\x7f" "ELF")
      unreadable("the image is not a CUBIN (no ELF header)");
    if (image[4] != 2 || image[5] != 1) unreadable("the CUBIN is not a little-endian ELF64 file");
    flags_ = read_le<std::uint32_t>(image, 48);
    const auto shoff = read_le<std::uint64_t>(image, 40);
    const auto shentsize = read_le<std::uint16_t>(image, 58);
    const auto shnum = read_le<std::uint16_t>(image, 60);
    const auto shstrndx = read_le<std::uint16_t>(image, 62);
    if (shentsize < 64 || shnum == 0 || shstrndx >= shnum) unreadable("the CUBIN's section header table is malformed");
    for (std::size_t i = 0; i < shnum; ++i) {
      const std::size_t h = shoff + i * shentsize;
      Section s;
      name_offsets_.push_back(read_le<std::uint32_t>(image, h));
      s.type = read_le<std::uint32_t>(image, h + 4);
      s.offset = read_le<std::uint64_t>(image, h + 24);
      s.size = read_le<std::uint64_t>(image, h + 32);
      s.link = read_le<std::uint32_t>(image, h + 40);
      s.entsize = read_le<std::uint64_t>(image, h + 56);
      if (s.type != 8 /* SHT_NOBITS */ && (s.offset > image.size() || image.size() - s.offset < s.size))
        unreadable("the CUBIN's section " + std::to_string(i) + " lies outside the file");
      sections_.push_back(s);
    }
    const std::string_view names = contents(sections_[shstrndx]);
    for (std::size_t i = 0; i < sections_.size(); ++i) sections_[i].name = string_at(names, name_offsets_[i]);
  }

  std::uint8_t os_abi() const { return static_cast<std::uint8_t>(image_[7]); }
  std::uint8_t abi_version() const { return static_cast<std::uint8_t>(image_[8]); }
  std::uint32_t flags() const { return flags_; }

  const Section* find(std::string_view name) const {
    for (const auto& s : sections_)
      if (s.name == name) return &s;
    return nullptr;
  }
  std::string_view contents(const Section& s) const {
    return s.type == 8 ? std::string_view{} : image_.substr(s.offset, s.size);
  }

  // st_other of the function symbol `name`, or nullopt when the symbol table has no such function.
  std::optional<std::uint8_t> function_other(std::string_view name) const {
    for (const auto& s : sections_) {
      if (s.type != kShtSymtab) continue;
      if (s.entsize < 24 || s.link >= sections_.size()) unreadable("the CUBIN's symbol table is malformed");
      const std::string_view table = contents(s), strings = contents(sections_[s.link]);
      for (std::size_t at = 0; at + 24 <= table.size(); at += s.entsize) {
        const auto info = static_cast<std::uint8_t>(table[at + 4]);
        if ((info & 0xf) != kSttFunc) continue;
        if (string_at(strings, read_le<std::uint32_t>(table, at)) == name) return static_cast<std::uint8_t>(table[at + 5]);
      }
    }
    return std::nullopt;
  }

 private:
  static std::string_view string_at(std::string_view table, std::uint32_t offset) {
    if (offset >= table.size()) unreadable("the CUBIN names a string outside its string table");
    const std::string_view rest = table.substr(offset);
    const auto end = rest.find('\0');
    if (end == std::string_view::npos) unreadable("the CUBIN's string table is not terminated");
    return rest.substr(0, end);
  }

  std::string_view image_;
  std::uint32_t flags_ = 0;
  std::vector<Section> sections_;
  std::vector<std::uint32_t> name_offsets_;
};

std::optional<std::vector<std::size_t>> cubin_parameter_sizes(std::string_view image, std::string_view symbol) {
  const Elf elf(image);
  const auto other = elf.function_other(symbol);
  if (!other || (*other & kStoCudaEntry) == 0) return std::nullopt;  // no such function, or not a kernel
  const std::string section_name = ".nv.info." + std::string(symbol);
  const Section* info = elf.find(section_name);
  std::vector<std::pair<std::uint16_t, std::size_t>> by_ordinal;
  if (info != nullptr) {
    const std::string_view records = elf.contents(*info);
    for (std::size_t at = 0; at < records.size();) {
      if (records.size() - at < 4) unreadable(section_name + " ends inside a record");
      const auto format = static_cast<std::uint8_t>(records[at]);
      const auto attribute = static_cast<std::uint8_t>(records[at + 1]);
      const auto value = read_le<std::uint16_t>(records, at + 2);
      at += 4;
      if (format != kFormatSval) continue;
      if (records.size() - at < value) unreadable(section_name + " has a record longer than the section");
      if (attribute == kAttrKparamInfo) {
        if (value < 12) unreadable(section_name + " has a KPARAM_INFO record of " + std::to_string(value) + " bytes");
        const auto ordinal = read_le<std::uint16_t>(records, at + 4);
        const auto flags = read_le<std::uint32_t>(records, at + 8);
        by_ordinal.emplace_back(ordinal, (flags >> 18) & 0x3fff);
      }
      at += value;
    }
  }
  std::sort(by_ordinal.begin(), by_ordinal.end());
  std::vector<std::size_t> sizes;
  for (std::size_t i = 0; i < by_ordinal.size(); ++i) {
    if (by_ordinal[i].first != i)
      unreadable(section_name + " lacks the parameter of ordinal " + std::to_string(i) + " (or repeats one)");
    sizes.push_back(by_ordinal[i].second);
  }
  return sizes;
}

bool is_identifier_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// The whitespace-separated words of `text`.
std::vector<std::string_view> words(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) ++i;
    const std::size_t start = i;
    while (i < text.size() && !(text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) ++i;
    if (i > start) out.push_back(text.substr(start, i - start));
  }
  return out;
}

std::size_t ptx_type_bytes(std::string_view type, std::string_view parameter) {
  // .b8 .u16 .s32 .f64 .b128 ...: the letter, then the bits.
  if (type.size() >= 3 && type[0] == '.' && (type[1] == 'b' || type[1] == 'u' || type[1] == 's' || type[1] == 'f')) {
    unsigned bits = 0;
    auto [end, ec] = std::from_chars(type.data() + 2, type.data() + type.size(), bits);
    if (ec == std::errc() && end == type.data() + type.size() && bits % 8 == 0 && bits > 0) return bits / 8;
  }
  unreadable("the PTX parameter '" + std::string(parameter) + "' has a type kiln does not read ('" + std::string(type) + "')");
}

// One ".param [.align N] .type [.ptr ...] name[[count]]" declaration: its size in bytes.
std::size_t ptx_parameter_bytes(std::string_view declaration) {
  const auto w = words(declaration);
  if (w.size() < 3 || w[0] != ".param") unreadable("the PTX entry has a parameter kiln does not read: '" + std::string(declaration) + "'");
  std::size_t i = 1;
  if (w[i] == ".align") i += 2;
  if (i + 1 >= w.size()) unreadable("the PTX entry has a parameter kiln does not read: '" + std::string(declaration) + "'");
  const std::size_t element = ptx_type_bytes(w[i], declaration);
  std::string_view name = w.back();  // after any .ptr .global .align N state-space qualifiers
  std::size_t count = 1;
  if (const auto open = name.find('['); open != std::string_view::npos) {
    if (name.back() != ']') unreadable("the PTX parameter '" + std::string(declaration) + "' has a malformed array size");
    const std::string_view digits = name.substr(open + 1, name.size() - open - 2);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), count);
    if (ec != std::errc() || end != digits.data() + digits.size())
      unreadable("the PTX parameter '" + std::string(declaration) + "' has a malformed array size");
  }
  return element * count;
}

std::optional<std::vector<std::size_t>> ptx_parameter_sizes(std::string_view ptx, std::string_view symbol) {
  for (std::size_t at = ptx.find(".entry"); at != std::string_view::npos; at = ptx.find(".entry", at + 6)) {
    if (at > 0 && is_identifier_char(ptx[at - 1])) continue;
    std::size_t i = at + 6;
    if (i >= ptx.size() || !(ptx[i] == ' ' || ptx[i] == '\t')) continue;
    while (i < ptx.size() && (ptx[i] == ' ' || ptx[i] == '\t')) ++i;
    const std::size_t name_start = i;
    while (i < ptx.size() && is_identifier_char(ptx[i])) ++i;
    if (ptx.substr(name_start, i - name_start) != symbol) continue;
    while (i < ptx.size() && (ptx[i] == ' ' || ptx[i] == '\t' || ptx[i] == '\n' || ptx[i] == '\r')) ++i;
    std::vector<std::size_t> sizes;
    if (i >= ptx.size() || ptx[i] != '(') return sizes;  // ".entry k" followed by its body: no parameters
    const auto close = ptx.find(')', i);
    if (close == std::string_view::npos) unreadable("the PTX entry '" + std::string(symbol) + "' has no ')' closing its parameters");
    const std::string_view list = ptx.substr(i + 1, close - i - 1);
    for (std::size_t start = 0; start <= list.size();) {
      auto comma = list.find(',', start);
      if (comma == std::string_view::npos) comma = list.size();
      const std::string_view declaration = trim(list.substr(start, comma - start));
      if (!declaration.empty()) sizes.push_back(ptx_parameter_bytes(declaration));
      start = comma + 1;
    }
    return sizes;
  }
  return std::nullopt;
}

int ptx_architecture(std::string_view ptx) {
  for (std::size_t at = ptx.find(".target"); at != std::string_view::npos; at = ptx.find(".target", at + 7)) {
    if (at > 0 && ptx[at - 1] != '\n' && ptx[at - 1] != ' ' && ptx[at - 1] != '\t') continue;
    std::size_t i = at + 7;
    while (i < ptx.size() && (ptx[i] == ' ' || ptx[i] == '\t')) ++i;
    if (ptx.substr(i, 3) != "sm_") continue;
    int arch = 0;
    auto [end, ec] = std::from_chars(ptx.data() + i + 3, ptx.data() + ptx.size(), arch);
    if (ec == std::errc() && arch > 0) return arch;  // "sm_90a" and "sm_90, texmode_independent" read as 90
  }
  unreadable("the PTX has no '.target sm_XX' line");
}

}  // namespace

std::optional<std::vector<std::size_t>> entry_parameter_sizes(std::string_view image, ImageKind kind,
                                                              std::string_view symbol) {
  switch (kind) {
    case ImageKind::cubin: return cubin_parameter_sizes(image, symbol);
    case ImageKind::ptx: return ptx_parameter_sizes(image, symbol);
    case ImageKind::ltoir: break;
  }
  unreadable("kiln reads the parameters of CUBIN and PTX images only, not " + std::string(to_string(kind)));
}

int image_architecture(std::string_view image, ImageKind kind) {
  switch (kind) {
    case ImageKind::cubin: {
      const Elf elf(image);
      const bool new_abi = elf.os_abi() == kOsAbiCudaNew || elf.abi_version() >= 8;
      const int arch = static_cast<int>(new_abi ? (elf.flags() >> 8) & 0xff : elf.flags() & 0xff);
      if (arch <= 0) unreadable("the CUBIN's ELF header names no architecture");
      return arch;
    }
    case ImageKind::ptx: return ptx_architecture(image);
    case ImageKind::ltoir: break;
  }
  unreadable("kiln reads the architecture of CUBIN and PTX images only, not " + std::string(to_string(kind)));
}

}  // namespace kiln::jit
