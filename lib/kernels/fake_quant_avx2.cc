// The AVX2 variant.  This file alone is compiled with -mavx2; the dispatcher
// uses it only after checking the CPU.
#include <immintrin.h>

#include <cstring>

#include "kernels/fake_quant_simd.h"
#include "kernels/fake_quant_variants.h"

namespace qat {
namespace kernels {
namespace {

struct Avx2 {
  using F = __m256;
  using M = __m256;  // all-ones lanes where true
  static constexpr int kWidth = 8;

  static F Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F Set1(float v) { return _mm256_set1_ps(v); }
  static F Add(F a, F b) { return _mm256_add_ps(a, b); }
  static F Sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F Div(F a, F b) { return _mm256_div_ps(a, b); }
  static F Min(F a, F b) { return _mm256_min_ps(a, b); }
  static F Max(F a, F b) { return _mm256_max_ps(a, b); }
  static F Zero() { return _mm256_setzero_ps(); }
  static M MaskAnd(M a, M b) { return _mm256_and_ps(a, b); }
  static M MaskOr(M a, M b) { return _mm256_or_ps(a, b); }
  static F Keep(F v, M m) { return _mm256_and_ps(v, m); }  // v where m, else +0
  static F CmpLe(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
  static F CmpLt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static F Select(F m, F a, F b) { return _mm256_blendv_ps(b, a, m); }
  static F Round(F u) {
    return _mm256_round_ps(u, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }

  static void StoreMask(bool* p, F m) {
    const __m256i ones = _mm256_srli_epi32(_mm256_castps_si256(m), 31);
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(ones),
                                      _mm256_extracti128_si256(ones, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi16(w, w));
  }
  static F LoadMask(const bool* p) {
    const __m256i v = _mm256_cvtepu8_epi32(
        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(v, _mm256_setzero_si256()));
  }
};

using Kernels = simd::FakeQuantSimd<Avx2>;

}  // namespace

const FakeQuantKernels kFakeQuant_avx2 = {
    "avx2", Isa::kAvx2,              Kernels::Forward,
    Kernels::ForwardRow, Kernels::SteBackward, Kernels::LsqAccumulate,
    Kernels::LsqAccumulateRows};

}  // namespace kernels
}  // namespace qat
