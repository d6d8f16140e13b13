// TokenStore: which tenant a bearer token belongs to. The tokens file holds one `tenant token` pair
// per line; `#` starts a comment; blank lines are ignored. A tenant may have several tokens (for
// rotation); a token belongs to one tenant. Tenant names are 1-64 of [A-Za-z0-9_.-]; tokens are
// 16-512 printable characters without spaces.
//
// Tokens are kept only as SHA-256 digests, so a lookup's timing does not depend on how much of a
// guessed token matches, and a memory dump does not reveal them.
//
// Thread safety: immutable after construction; tenant_for() may run on any thread.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kiln::service {

class TokenStore {
 public:
  TokenStore() = default;
  // Throws kiln::Error (Errc::invalid_argument) naming origin:line for a malformed line, a bad
  // tenant name, a short token or a token listed twice.
  static TokenStore parse(std::string_view text, std::string_view origin);
  // Throws kiln::Error naming the file when it cannot be read (or parse()'s errors), and when it is
  // not a regular file or group or others may read or write it (its mode is checked on the opened
  // file, so a symbolic link is judged by what it points to): the message names the mode and the
  // fix (chmod 600). With `allow_insecure` such a file is loaded and `*warning` (when given) says
  // what is wrong with it; otherwise `*warning` is left empty.
  static TokenStore load(const std::filesystem::path& file, bool allow_insecure = false, std::string* warning = nullptr);
  // One tenant with one token.
  static TokenStore single(std::string tenant, std::string_view token);

  std::optional<std::string> tenant_for(std::string_view token) const;
  // A credential as a front end receives it ("Bearer <token>", in HTTP's Authorization header or
  // gRPC's authorization metadata: `name` and `carrier` word the refusal, "Authorization" and
  // "header"): the tenant, or why not, never naming the token.
  struct BearerCheck {
    std::optional<std::string> tenant;
    std::string why;  // empty when tenant is set
  };
  BearerCheck check_bearer(std::string_view value, std::string_view name, std::string_view carrier) const;
  std::size_t token_count() const noexcept { return tenants_.size(); }
  std::vector<std::string> tenants() const;  // sorted, without repeats

 private:
  void add(std::string tenant, std::string_view token, std::string_view where);
  std::unordered_map<std::string, std::string> tenants_;  // SHA-256 of the token (raw bytes) -> tenant
};

// 32 random bytes from the operating system, as 64 hex digits. Throws kiln::Error when the system's
// random source fails.
std::string generate_token();
bool valid_tenant_name(std::string_view name) noexcept;

}  // namespace kiln::service
