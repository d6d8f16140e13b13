#include "jit/detail/sha256.hpp"

#include <openssl/evp.h>

#include "kiln/driver/error.hpp"

namespace kiln::jit::detail {
namespace {

// Fetched once: EVP_sha256() makes OpenSSL 3 look the algorithm up again on every init, which
// cost more than hashing a small program (measured: ~2 us of a 3 us key on the CPU machine).
const EVP_MD* sha256_algorithm() {
  static const EVP_MD* const md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (fetched == nullptr) throw Error(Errc::internal, "OpenSSL has no SHA-256 (EVP_MD_fetch failed)");
    return fetched;
  }();
  return md;
}

// One digest context per thread, reused by every one-shot sha256().
struct ThreadContext {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~ThreadContext() { EVP_MD_CTX_free(ctx); }
};

}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex2(ctx_, sha256_algorithm(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx_);
    throw Error(Errc::internal, "OpenSSL could not start a SHA-256 digest");
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::update(const void* data, std::size_t size) {
  if (size != 0 && EVP_DigestUpdate(ctx_, data, size) != 1)
    throw Error(Errc::internal, "OpenSSL SHA-256 update failed");
}

Digest Sha256::finish() {
  Digest out{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx_, out.data(), &length) != 1 || length != out.size())
    throw Error(Errc::internal, "OpenSSL SHA-256 finish failed");
  return out;
}

Digest sha256(std::string_view bytes) {
  thread_local ThreadContext thread;
  Digest out{};
  unsigned int length = 0;
  if (thread.ctx == nullptr || EVP_DigestInit_ex2(thread.ctx, sha256_algorithm(), nullptr) != 1 ||
      EVP_DigestUpdate(thread.ctx, bytes.data(), bytes.size()) != 1 ||
      EVP_DigestFinal_ex(thread.ctx, out.data(), &length) != 1 || length != out.size())
    throw Error(Errc::internal, "OpenSSL SHA-256 failed");
  return out;
}

}  // namespace kiln::jit::detail
