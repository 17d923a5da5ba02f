// The AVX2+FMA float kernels: 6 x 16 GEMM micro-tiles (12 accumulator
// registers), the direct convolution and the depthwise convolution.
// This file alone is compiled with -mavx2 -mfma; the dispatcher uses it only
// after checking the CPU.
#include <immintrin.h>

#include "kernels/float_kernels_simd.h"
#include "kernels/transpose8x8_avx.h"

namespace qat {
namespace kernels {
namespace {

struct Avx2Fma {
  using F = __m256;
  static constexpr int kWidth = 8;
  static F Zero() { return _mm256_setzero_ps(); }
  static F Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F Set1(float v) { return _mm256_set1_ps(v); }
  using I = __m256i;
  static I Indices(int first, int64_t stride) {
    const int s = static_cast<int>(stride);
    return _mm256_mullo_epi32(_mm256_add_epi32(_mm256_set1_epi32(first),
                                               _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)),
                              _mm256_set1_epi32(s));
  }
  static F Gather(const float* base, I index) {
    const F all = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), base, index, all, 4);
  }
  using M = __m256i;
  static M Range(int lo, int hi) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_and_si256(_mm256_cmpgt_epi32(lane, _mm256_set1_epi32(lo - 1)),
                            _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), lane));
  }
  static F MaskLoad(const float* p, M m) { return _mm256_maskload_ps(p, m); }
  static void MaskStore(float* p, M m, F v) { _mm256_maskstore_ps(p, m, v); }
  static F Fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F Add(F a, F b) { return _mm256_add_ps(a, b); }
  static F Mul(F a, F b) { return _mm256_mul_ps(a, b); }
  // a > b ? a : b and a < b ? a : b, lane by lane (b when unordered).
  static F Max(F a, F b) { return _mm256_max_ps(a, b); }
  static F Min(F a, F b) { return _mm256_min_ps(a, b); }
  static void Transpose8x8(const float* src, int64_t src_stride, float* dst, int64_t dst_stride) {
    Transpose8x8Avx(src, src_stride, dst, dst_stride);
  }
};

}  // namespace

constexpr SgemmKernels kSgemm_avx2_fma =
    simd::FloatKernels<Avx2Fma, 6, 2, 12, 6>::Table("avx2_fma", Isa::kAvx2Fma);

}  // namespace kernels
}  // namespace qat
