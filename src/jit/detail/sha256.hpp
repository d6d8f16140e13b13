// Incremental SHA-256 over OpenSSL's EVP interface, owned by RAII.
//
// Thread safety: one object per thread; distinct objects are independent.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

struct evp_md_ctx_st;

namespace kiln::jit::detail {

using Digest = std::array<std::uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, std::size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  Digest finish();  // the object may not be updated afterwards

 private:
  evp_md_ctx_st* ctx_;
};

Digest sha256(std::string_view bytes);

}  // namespace kiln::jit::detail
