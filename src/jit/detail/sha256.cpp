#include "jit/detail/sha256.hpp"

#include <openssl/evp.h>

#include "kiln/driver/error.hpp"

namespace kiln::jit::detail {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
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
  Sha256 h;
  h.update(bytes);
  return h.finish();
}

}  // namespace kiln::jit::detail
