// The AVX-512 float kernels: 8 x 32 GEMM micro-tiles (16 accumulator
// registers), the direct convolution and the depthwise convolution.
// This file alone is compiled with -mavx512f -mfma; the dispatcher uses it
// only after checking the CPU.
#include <immintrin.h>

#include "kernels/float_kernels_simd.h"
#include "kernels/transpose8x8_avx.h"

namespace qat {
namespace kernels {
namespace {

struct Avx512 {
  using F = __m512;
  static constexpr int kWidth = 16;
  static F Zero() { return _mm512_setzero_ps(); }
  static F Load(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F Set1(float v) { return _mm512_set1_ps(v); }
  using I = __m512i;
  static I Indices(int first, int64_t stride) {
    const int s = static_cast<int>(stride);
    return _mm512_mullo_epi32(
        _mm512_add_epi32(_mm512_set1_epi32(first),
                         _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)),
        _mm512_set1_epi32(s));
  }
  static F Gather(const float* base, I index) {
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xffff, index, base, 4);
  }
  using M = __mmask16;
  static M Range(int lo, int hi) {
    return static_cast<M>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
  }
  static F MaskLoad(const float* p, M m) { return _mm512_maskz_loadu_ps(m, p); }
  static void MaskStore(float* p, M m, F v) { _mm512_mask_storeu_ps(p, m, v); }
  static F Fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F Add(F a, F b) { return _mm512_add_ps(a, b); }
  static F Mul(F a, F b) { return _mm512_mul_ps(a, b); }
  // a > b ? a : b and a < b ? a : b, lane by lane (b when unordered).
  // Zero-masked with every lane kept: the plain intrinsics pass an undefined
  // vector that GCC 12 warns about (-Wmaybe-uninitialized).
  static F Max(F a, F b) { return _mm512_maskz_max_ps(0xffff, a, b); }
  static F Min(F a, F b) { return _mm512_maskz_min_ps(0xffff, a, b); }
  static void Transpose8x8(const float* src, int64_t src_stride, float* dst, int64_t dst_stride) {
    Transpose8x8Avx(src, src_stride, dst, dst_stride);
  }
};

}  // namespace

constexpr SgemmKernels kSgemm_avx512 =
    simd::FloatKernels<Avx512, 8, 2, 16, 8>::Table("avx512", Isa::kAvx512);

}  // namespace kernels
}  // namespace qat
