#include "kiln/service/token_store.hpp"

#include <fcntl.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include "kiln/driver/error.hpp"

namespace kiln::service {

namespace {

std::string digest(std::string_view token) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), out);
  return std::string(reinterpret_cast<const char*>(out), sizeof out);
}

bool valid_token(std::string_view token) noexcept {
  if (token.size() < 16 || token.size() > 512) return false;
  return std::all_of(token.begin(), token.end(), [](char c) { return c > ' ' && c < 127; });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool valid_tenant_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
  });
}

void TokenStore::add(std::string tenant, std::string_view token, std::string_view where) {
  if (!valid_tenant_name(tenant))
    throw Error(Errc::invalid_argument, std::string(where) + ": tenant name '" + tenant +
                                            "' must be 1-64 characters of A-Z a-z 0-9 _ . -");
  if (!valid_token(token))
    throw Error(Errc::invalid_argument, std::string(where) + ": the token of tenant '" + tenant +
                                            "' must be 16-512 printable characters without spaces");
  if (!tenants_.emplace(digest(token), std::move(tenant)).second)
    throw Error(Errc::invalid_argument, std::string(where) + ": this token is already listed (each token names one tenant)");
}

TokenStore TokenStore::parse(std::string_view text, std::string_view origin) {
  TokenStore store;
  std::size_t line_number = 0;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    ++line_number;
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    const std::string where = std::string(origin) + ":" + std::to_string(line_number);
    const std::size_t space = line.find_first_of(" \t");
    if (space == std::string_view::npos)
      throw Error(Errc::invalid_argument, where + ": expected 'tenant token', found one word");
    const std::string_view tenant = line.substr(0, space);
    const std::string_view token = trim(line.substr(space));
    if (token.find_first_of(" \t") != std::string_view::npos)
      throw Error(Errc::invalid_argument, where + ": expected 'tenant token', found more than two words");
    store.add(std::string(tenant), token, where);
  }
  if (store.tenants_.empty()) throw Error(Errc::invalid_argument, std::string(origin) + ": no tokens listed");
  return store;
}

namespace {

// Closes the descriptor however load() leaves.
struct FileDescriptor {
  int fd;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

// What is wrong with a tokens file's mode, or "" when only its owner may read or write it.
std::string insecure_mode(mode_t mode) {
  std::string who;
  if (mode & (S_IRGRP | S_IWGRP)) who = "its group";
  if (mode & (S_IROTH | S_IWOTH)) who += (who.empty() ? "" : " and ") + std::string("every user");
  if (who.empty()) return {};
  const bool writable = (mode & (S_IWGRP | S_IWOTH)) != 0;
  char octal[8];
  std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(mode & 07777));
  return std::string("is ") + (writable ? "readable or writable" : "readable") + " by " + who + " (mode " + octal +
         "): whoever reads it can act as any tenant" + (writable ? ", and whoever writes it can add tokens" : "");
}

}  // namespace

TokenStore TokenStore::load(const std::filesystem::path& file, bool allow_insecure, std::string* warning) {
  if (warning) warning->clear();
  const std::string name = file.string();
  const FileDescriptor in{::open(name.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)};
  if (in.fd < 0) throw Error(Errc::invalid_argument, "cannot read the tokens file " + name + ": " + std::strerror(errno));
  // The mode of what was opened, not of the name: a symbolic link is judged by its target.
  struct stat st {};
  if (::fstat(in.fd, &st) != 0)
    throw Error(Errc::invalid_argument, "cannot read the tokens file " + name + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw Error(Errc::invalid_argument, "the tokens file " + name + " is not a regular file");
  if (const std::string why = insecure_mode(st.st_mode); !why.empty()) {
    if (!allow_insecure)
      throw Error(Errc::invalid_argument, "the tokens file " + name + " " + why + "; run 'chmod 600 " + name +
                                              "' (or start with --allow-insecure-tokens to accept it)");
    if (warning) *warning = "warning: the tokens file " + name + " " + why + "; accepted (--allow-insecure-tokens); run 'chmod 600 " + name + "'";
  }
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(in.fd, buffer, sizeof buffer);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(Errc::invalid_argument, "cannot read the tokens file " + name + ": " + std::strerror(errno));
    }
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > (64u << 20)) throw Error(Errc::invalid_argument, "the tokens file " + name + " exceeds 64 MiB");
  }
  return parse(text, name);
}

TokenStore TokenStore::single(std::string tenant, std::string_view token) {
  TokenStore store;
  store.add(std::move(tenant), token, "token");
  return store;
}

std::optional<std::string> TokenStore::tenant_for(std::string_view token) const {
  if (auto it = tenants_.find(digest(token)); it != tenants_.end()) return it->second;
  return std::nullopt;
}

TokenStore::BearerCheck TokenStore::check_bearer(std::string_view value, std::string_view name,
                                                 std::string_view carrier) const {
  static constexpr std::string_view kScheme = "Bearer ";
  BearerCheck out;
  if (value.empty())
    out.why = "missing '" + std::string(name) + ": Bearer <token>' " + std::string(carrier);
  else if (value.size() <= kScheme.size() || value.substr(0, kScheme.size()) != kScheme)
    out.why = "the " + std::string(name) + " " + std::string(carrier) + " must use the Bearer scheme";
  else if (!(out.tenant = tenant_for(value.substr(kScheme.size()))))
    out.why = "unknown bearer token";
  return out;
}

std::vector<std::string> TokenStore::tenants() const {
  std::set<std::string> names;
  for (const auto& [d, tenant] : tenants_) names.insert(tenant);
  return {names.begin(), names.end()};
}

std::string generate_token() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1)
    throw Error(Errc::internal, "the system's random source failed; cannot generate a token");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

}  // namespace kiln::service
