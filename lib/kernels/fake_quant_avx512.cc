// The AVX-512 variant (AVX-512F only).  This file alone is compiled with
// -mavx512f; the dispatcher uses it only after checking the CPU.  Masks are
// k-registers; every arithmetic instruction is the 512-bit form of the one
// the AVX2 variant uses (VDIVPS, VROUNDSCALEPS to nearest even, VMINPS /
// VMAXPS with the same NaN rule, VADDPS, VMULPS), so the bits are the same.
#include <immintrin.h>

#include "kernels/fake_quant_simd.h"
#include "kernels/fake_quant_variants.h"

namespace qat {
namespace kernels {
namespace {

// The all-lanes masked forms below compute the same as the plain ones; GCC 12
// implements the plain ones with _mm512_undefined_*, which -O3 reports as
// uninitialized.
constexpr __mmask16 kAll = 0xffff;

struct Avx512 {
  using F = __m512;
  using M = __mmask16;
  static constexpr int kWidth = 16;

  static F Load(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F Set1(float v) { return _mm512_set1_ps(v); }
  static F Add(F a, F b) { return _mm512_add_ps(a, b); }
  static F Sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F Div(F a, F b) { return _mm512_div_ps(a, b); }
  static F Min(F a, F b) { return _mm512_maskz_min_ps(kAll, a, b); }
  static F Max(F a, F b) { return _mm512_maskz_max_ps(kAll, a, b); }
  static F Zero() { return _mm512_setzero_ps(); }
  static M MaskAnd(M a, M b) { return _mm512_kand(a, b); }
  static M MaskOr(M a, M b) { return _mm512_kor(a, b); }
  // v where m, else +0 (zero-masking, as AND with an all-ones mask).
  static F Keep(F v, M m) { return _mm512_maskz_mov_ps(m, v); }
  static M CmpLe(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
  static M CmpLt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static F Select(M m, F a, F b) { return _mm512_mask_blend_ps(m, b, a); }
  static F Round(F u) {
    return _mm512_maskz_roundscale_ps(kAll, u,
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }

  // 16 bools (0 or 1).
  static void StoreMask(bool* p, M m) {
    const __m128i b = _mm512_maskz_cvtepi32_epi8(kAll, _mm512_maskz_set1_epi32(m, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), b);
  }
  static M LoadMask(const bool* p) {
    const __m512i v =
        _mm512_maskz_cvtepu8_epi32(kAll, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm512_test_epi32_mask(v, v);
  }
};

using Kernels = simd::FakeQuantSimd<Avx512>;

}  // namespace

const FakeQuantKernels kFakeQuant_avx512 = {
    "avx512", Isa::kAvx512,          Kernels::Forward,
    Kernels::ForwardRow, Kernels::SteBackward, Kernels::LsqAccumulate,
    Kernels::LsqAccumulateRows};

}  // namespace kernels
}  // namespace qat
