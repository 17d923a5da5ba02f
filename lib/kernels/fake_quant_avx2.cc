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
  using D = __m256d;
  static constexpr int kWidth = 8;
  static constexpr int kAccRegs = kLsqLanes / 4;

  static F Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F Set1(float v) { return _mm256_set1_ps(v); }
  static F Add(F a, F b) { return _mm256_add_ps(a, b); }
  static F Sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F Div(F a, F b) { return _mm256_div_ps(a, b); }
  static F Min(F a, F b) { return _mm256_min_ps(a, b); }
  static F Max(F a, F b) { return _mm256_max_ps(a, b); }
  static F And(F a, F b) { return _mm256_and_ps(a, b); }
  static F Or(F a, F b) { return _mm256_or_ps(a, b); }
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

  // Lanes 0..3 live in acc[0], lanes 4..7 in acc[1].
  static void LoadAcc(D* acc, const double* lanes) {
    acc[0] = _mm256_loadu_pd(lanes);
    acc[1] = _mm256_loadu_pd(lanes + 4);
  }
  static void StoreAcc(double* lanes, const D* acc) {
    _mm256_storeu_pd(lanes, acc[0]);
    _mm256_storeu_pd(lanes + 4, acc[1]);
  }
  static D Low(F v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
  static D High(F v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
  static void AccumulateProducts(D* acc, int, F a, F b) {
    acc[0] = _mm256_add_pd(acc[0], _mm256_mul_pd(Low(a), Low(b)));
    acc[1] = _mm256_add_pd(acc[1], _mm256_mul_pd(High(a), High(b)));
  }
  static void AccumulateWidened(D* acc, int, F a) {
    acc[0] = _mm256_add_pd(acc[0], Low(a));
    acc[1] = _mm256_add_pd(acc[1], High(a));
  }
  static void StoreProducts(double* p, F a, F b) {
    _mm256_storeu_pd(p, _mm256_mul_pd(Low(a), Low(b)));
    _mm256_storeu_pd(p + 4, _mm256_mul_pd(High(a), High(b)));
  }
  static void StoreWidened(double* p, F a) {
    _mm256_storeu_pd(p, Low(a));
    _mm256_storeu_pd(p + 4, High(a));
  }
};

using Kernels = simd::FakeQuantSimd<Avx2>;

}  // namespace

const FakeQuantKernels kFakeQuant_avx2 = {
    "avx2", Isa::kAvx2,              Kernels::Forward,
    Kernels::ForwardRow, Kernels::SteBackward, Kernels::LsqAccumulate};

}  // namespace kernels
}  // namespace qat
