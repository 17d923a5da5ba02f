// The SSE2 variant: the baseline of every x86-64 CPU.
#include <emmintrin.h>

#include <cstring>

#include "kernels/fake_quant_simd.h"
#include "kernels/fake_quant_variants.h"

namespace qat {
namespace kernels {
namespace {

struct Sse2 {
  using F = __m128;
  using M = __m128;  // all-ones lanes where true
  static constexpr int kWidth = 4;

  static F Load(const float* p) { return _mm_loadu_ps(p); }
  static void Store(float* p, F v) { _mm_storeu_ps(p, v); }
  static F Set1(float v) { return _mm_set1_ps(v); }
  static F Add(F a, F b) { return _mm_add_ps(a, b); }
  static F Sub(F a, F b) { return _mm_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm_mul_ps(a, b); }
  static F Div(F a, F b) { return _mm_div_ps(a, b); }
  static F Min(F a, F b) { return _mm_min_ps(a, b); }
  static F Max(F a, F b) { return _mm_max_ps(a, b); }
  static F Zero() { return _mm_setzero_ps(); }
  static M MaskAnd(M a, M b) { return _mm_and_ps(a, b); }
  static M MaskOr(M a, M b) { return _mm_or_ps(a, b); }
  static F Keep(F v, M m) { return _mm_and_ps(v, m); }  // v where m, else +0
  static F CmpLe(F a, F b) { return _mm_cmple_ps(a, b); }
  static F CmpLt(F a, F b) { return _mm_cmplt_ps(a, b); }
  static F Select(F m, F a, F b) {
    return _mm_or_ps(_mm_and_ps(m, a), _mm_andnot_ps(m, b));
  }

  // Round half to even without SSE4.1: adding and removing 2^23 leaves no
  // fraction bits, so the FPU rounds in its default mode (to nearest, ties to
  // even).  |u| >= 2^23 is already an integer, and so is NaN "rounded".
  static F Round(F u) {
    const F sign_bit = _mm_set1_ps(-0.0f);
    const F magic = _mm_set1_ps(8388608.0f);  // 2^23
    const F abs_u = _mm_andnot_ps(sign_bit, u);
    F r = _mm_sub_ps(_mm_add_ps(abs_u, magic), magic);
    r = _mm_or_ps(r, _mm_and_ps(sign_bit, u));  // copysign, keeps -0
    return Select(_mm_cmplt_ps(abs_u, magic), r, u);
  }

  // kWidth bools (0 or 1) from a comparison mask.
  static void StoreMask(bool* p, F m) {
    const __m128i ones = _mm_srli_epi32(_mm_castps_si128(m), 31);
    const __m128i w = _mm_packs_epi32(ones, ones);
    const __m128i b = _mm_packus_epi16(w, w);
    const int bits = _mm_cvtsi128_si32(b);
    std::memcpy(p, &bits, kWidth);
  }
  static F LoadMask(const bool* p) {
    int bits;
    std::memcpy(&bits, p, kWidth);
    const __m128i zero = _mm_setzero_si128();
    __m128i v = _mm_cvtsi32_si128(bits);
    v = _mm_unpacklo_epi16(_mm_unpacklo_epi8(v, zero), zero);
    return _mm_castsi128_ps(_mm_cmpgt_epi32(v, zero));
  }
};

using Kernels = simd::FakeQuantSimd<Sse2>;

}  // namespace

const FakeQuantKernels kFakeQuant_sse2 = {
    "sse2", Isa::kSse2,     Kernels::Forward,
    Kernels::ForwardRow, Kernels::SteBackward, Kernels::LsqAccumulate,
    Kernels::LsqAccumulateRows};

}  // namespace kernels
}  // namespace qat
