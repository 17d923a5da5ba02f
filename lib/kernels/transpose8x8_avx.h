// An 8 x 8 float transpose through AVX registers, memory to memory: the
// depthwise kernels' channel interleaving (kernels/depthwise_conv_simd.h).
// Include only in a translation unit built with AVX2 or above (the AVX2 and
// AVX-512 kernel files).  The anonymous namespace gives each its own copy,
// compiled for its instruction set, which the linker never merges.
#ifndef QAT_LIB_KERNELS_TRANSPOSE8X8_AVX_H_
#define QAT_LIB_KERNELS_TRANSPOSE8X8_AVX_H_

#include <immintrin.h>

#include <cstdint>

namespace qat {
namespace kernels {
namespace {

// dst[j * dst_stride + i] = src[i * src_stride + j] for i, j < 8.
inline void Transpose8x8Avx(const float* src, int64_t src_stride, float* dst,
                            int64_t dst_stride) {
  __m256 r[8], t[8], s[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * src_stride);
  // Pairs of rows interleaved, then pairs of pairs: s[k] holds, per 128-bit
  // half h, column k % 4 + 4 h of rows 4 (k / 4) .. 4 (k / 4) + 3.
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int q = 0; q < 8; q += 4) {
    s[q + 0] = _mm256_shuffle_ps(t[q + 0], t[q + 2], _MM_SHUFFLE(1, 0, 1, 0));
    s[q + 1] = _mm256_shuffle_ps(t[q + 0], t[q + 2], _MM_SHUFFLE(3, 2, 3, 2));
    s[q + 2] = _mm256_shuffle_ps(t[q + 1], t[q + 3], _MM_SHUFFLE(1, 0, 1, 0));
    s[q + 3] = _mm256_shuffle_ps(t[q + 1], t[q + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int k = 0; k < 4; ++k) {
    _mm256_storeu_ps(dst + k * dst_stride, _mm256_permute2f128_ps(s[k], s[k + 4], 0x20));
    _mm256_storeu_ps(dst + (k + 4) * dst_stride, _mm256_permute2f128_ps(s[k], s[k + 4], 0x31));
  }
}

}  // namespace
}  // namespace kernels
}  // namespace qat

#endif  // QAT_LIB_KERNELS_TRANSPOSE8X8_AVX_H_
