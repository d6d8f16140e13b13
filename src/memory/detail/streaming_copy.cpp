#include "kiln/memory/detail/streaming_copy.hpp"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace kiln::memory::detail {

#if defined(__x86_64__)

namespace {

// 128 bytes a round: four 32-byte loads (any alignment), four 32-byte streaming stores (aligned).
__attribute__((target("avx2"))) void stream_avx2(char* d, const char* s, std::size_t blocks) noexcept {
  for (std::size_t i = 0; i < blocks; ++i, d += 128, s += 128) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + 32));
    const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + 64));
    const __m256i e = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + 96));
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d), a);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + 32), b);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + 64), c);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + 96), e);
  }
}

void stream_sse2(char* d, const char* s, std::size_t blocks) noexcept {
  for (std::size_t i = 0; i < blocks; ++i, d += 128, s += 128)
    for (int k = 0; k < 128; k += 16)
      _mm_stream_si128(reinterpret_cast<__m128i*>(d + k), _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + k)));
}

const bool kAvx2 = __builtin_cpu_supports("avx2");

}  // namespace

void streaming_copy(void* dst, const void* src, std::size_t n) noexcept {
  auto* d = static_cast<char*>(dst);
  const auto* s = static_cast<const char*>(src);
  if (n < 4096) {  // not worth the fence
    std::memcpy(d, s, n);
    return;
  }
  // Ordinary stores up to the first 64-byte boundary of the destination, streaming stores for the
  // whole 128-byte blocks after it, ordinary stores for the rest.
  const std::size_t head = (64 - (reinterpret_cast<std::uintptr_t>(d) & 63)) & 63;
  std::memcpy(d, s, head);
  d += head;
  s += head;
  n -= head;
  const std::size_t blocks = n / 128;
  if (kAvx2) stream_avx2(d, s, blocks);
  else stream_sse2(d, s, blocks);
  _mm_sfence();  // streaming stores are weakly ordered: make them visible before the DMA or the caller
  std::memcpy(d + blocks * 128, s + blocks * 128, n - blocks * 128);
}

#else

void streaming_copy(void* dst, const void* src, std::size_t n) noexcept { std::memcpy(dst, src, n); }

#endif

}  // namespace kiln::memory::detail
