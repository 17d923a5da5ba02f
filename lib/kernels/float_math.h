// Float exp and erf that vectorize and give the same bits on every
// instruction set.  ExpFloat and ErfFloat are the definition: plain scalar
// float code using only correctly rounded IEEE +, -, *, comparisons,
// selects and integer bit manipulation (no libm, no fused multiply-add: the
// project builds with -ffp-contract=off).  They are branch-free and always
// inlined, so that a loop calling them, compiled once per instruction set
// (QAT_TARGET_CLONES), runs the same operations in the same order on each
// element in every clone: the vector lanes compute what the scalar code does.
// ExpFloats and ErfFloats are such loops.  docs/kernels.md ("Float exp and
// erf") states the method; tests/float_math_test.cc checks the bounds below
// against double-precision std::exp / std::erf over dense sweeps, and the
// clones against the scalar code bit for bit.
//
//   ExpFloat(x): within 1 ULP of exp(x) rounded to float, for every x,
//                subnormal results included; +inf from 88.7228394
//                (0x42b17218, the first float whose exp overflows), 0 far
//                below,
//                exp(-inf) = 0, exp(+inf) = +inf, NaN -> NaN.
//   ErfFloat(x): within 1 ULP of erf(x) rounded to float (ULPs of the result,
//                so relative near 0: erf(x) ~ 2/sqrt(pi) x for tiny and
//                subnormal x), odd, erf(+-0) = +-0, +-1 from |x| >= 3.9193 and
//                at +-inf, NaN -> NaN.
#ifndef QAT_LIB_KERNELS_FLOAT_MATH_H_
#define QAT_LIB_KERNELS_FLOAT_MATH_H_

#include <cstdint>
#include <cstring>

#include "kernels/target_clones.h"

namespace qat {
namespace kernels {
namespace float_math_internal {

QAT_ALWAYS_INLINE uint32_t Bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}
QAT_ALWAYS_INLINE float FromBits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

// c ? a : b, as a mask on the bits: a ?: on floats lets GCC thread the
// branch and fold the constant into the rest of the code on one path (a
// product that overflows, which it must then keep), and the loop no
// longer if-converts into vector code without AVX-512's masks.
QAT_ALWAYS_INLINE float Select(bool c, float a, float b) {
  const uint32_t mask = 0u - static_cast<uint32_t>(c);
  return FromBits((Bits(a) & mask) | (Bits(b) & ~mask));
}

}  // namespace float_math_internal

// e^x.  Range reduction: n = round(x / ln 2) by adding 1.5 * 2^23 (the sum
// rounds to an integer, half to even, and its low mantissa bits hold n), and
// r = x - n ln 2 with ln 2 split as kLn2Hi + kLn2Lo: kLn2Hi has 16
// significant bits, so n * kLn2Hi is exact for |n| <= 255 and x - n * kLn2Hi
// is exact (the two are within a factor 2 of each other, or n = 0).  Then
// e^r = 1 + (r + r^2 Q(r)) on |r| <= 0.3506, Q a degree-4 polynomial fitted
// for this code (minimax-like relative error 3.3e-9, by iteratively
// reweighted least squares), and e^x = e^r * 2^n1 * 2^n2 with n1 = floor(n/2),
// n2 = n - n1: the first product is exact, the second rounds once, so that
// subnormal results are rounded only once and 2^128 * (e^r < 1) is finite.
// x is clamped to [-104, 89] first (a NaN passes through the comparisons):
// e^-104 is below half the smallest subnormal and e^89 overflows.
QAT_ALWAYS_INLINE float ExpFloat(float x) {
  using float_math_internal::Bits;
  using float_math_internal::FromBits;
  using float_math_internal::Select;
  constexpr float kMagic = 12582912.0f;           // 1.5 * 2^23
  constexpr float kLog2e = 1.442695022e+00f;
  constexpr float kLn2Hi = 0.693145751953125f;     // ln 2 to 16 bits
  constexpr float kLn2Lo = 1.428606765e-06f;  // ln 2 - kLn2Hi
  constexpr float kQ0 = 4.999999404e-01f;
  constexpr float kQ1 = 1.666651368e-01f;
  constexpr float kQ2 = 4.166846722e-02f;
  constexpr float kQ3 = 8.369534276e-03f;
  constexpr float kQ4 = 1.381290611e-03f;
  x = Select(x > 89.0f, 89.0f, x);
  x = Select(x < -104.0f, -104.0f, x);
  const float t = x * kLog2e + kMagic;
  const float n = t - kMagic;
  // n as an integer, in [-150, 128]; unsigned arithmetic (a NaN's bits
  // give some scale, and the NaN product stays NaN).
  const uint32_t ni = Bits(t) - Bits(kMagic);
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  const float q = kQ0 + r * (kQ1 + r * (kQ2 + r * (kQ3 + r * kQ4)));
  const float p = 1.0f + (r + (r * r) * q);
  const uint32_t n1 = static_cast<uint32_t>(static_cast<int32_t>(ni) >> 1);
  const uint32_t n2 = ni - n1;
  const float s1 = FromBits((n1 + 127u) << 23);
  const float s2 = FromBits((n2 + 127u) << 23);
  return (p * s1) * s2;
}

// erf(x), on a = |x| and the sign put back (erf is odd).
//   a < 1:  erf = a + a P(a^2), P of degree 6 in a^2 (P(0) = 2/sqrt(pi) - 1),
//           so the leading term is exact and tiny a give 2/sqrt(pi) a.
//   a >= 1: erf = 1 - e^(-a^2) S(a - 2.5), S of degree 9 fitted to
//           erfc(a) e^(a^2) on [1, 4] weighted by e^(-a^2) (the error
//           that reaches erf).  a^2 = hi + lo exactly (Dekker's product,
//           splitting a into 12-bit halves), e^(-a^2) = ExpFloat(-hi)(1 - lo)
//           (|lo| <= 2^-24 a^2, so the first-order correction is exact to
//           float precision).
// Both regions are computed and one is selected; a is clamped to 4
// first (erf rounds to 1 from 3.9193 on) (a NaN passes through the comparison).
QAT_ALWAYS_INLINE float ErfFloat(float x) {
  using float_math_internal::Bits;
  using float_math_internal::FromBits;
  using float_math_internal::Select;
  constexpr float kP0 = 1.283791661e-01f;
  constexpr float kP1 = -3.761262596e-01f;
  constexpr float kP2 = 1.128358543e-01f;
  constexpr float kP3 = -2.685381286e-02f;
  constexpr float kP4 = 5.188329145e-03f;
  constexpr float kP5 = -8.010203601e-04f;
  constexpr float kP6 = 7.853891293e-05f;
  constexpr float kS0 = 2.108063400e-01f;
  constexpr float kS1 = -7.434938103e-02f;
  constexpr float kS2 = 2.492953278e-02f;
  constexpr float kS3 = -8.000192232e-03f;
  constexpr float kS4 = 2.520708134e-03f;
  constexpr float kS5 = -6.491645472e-04f;
  constexpr float kS6 = 2.236731816e-04f;
  constexpr float kS7 = -1.362083131e-04f;
  constexpr float kS8 = -5.778006744e-05f;
  constexpr float kS9 = -2.799449248e-05f;
  const uint32_t bits = Bits(x);
  float a = FromBits(bits & 0x7fffffffu);
  a = Select(a > 4.0f, 4.0f, a);
  const float s = a * a;
  const float p = kP0 + s * (kP1 + s * (kP2 + s * (kP3 + s * (kP4 + s * (kP5 + s * kP6)))));
  const float small = a + a * p;
  const float ah = FromBits(Bits(a) & 0xfffff000u);
  const float al = a - ah;
  const float lo = ((ah * ah - s) + 2.0f * ah * al) + al * al;
  const float e = ExpFloat(-s);
  const float g = e - e * lo;
  const float u = a - 2.5f;
  const float big_s =
      kS0 + u * (kS1 + u * (kS2 + u * (kS3 + u * (kS4 + u * (kS5 + u * (kS6 + u * (kS7 + u * (kS8 + u * kS9))))))));
  const float large = 1.0f - g * big_s;
  const float y = FromBits(Bits(Select(a < 1.0f, small, large)) | (bits & 0x80000000u));
  // A NaN meets its negation (in -s) above, and which of two NaNs a product
  // returns depends on the operand order the compiler picked: return x's
  // own NaN (quieted), the same on every clone.
  return Select(x != x, x + x, y);
}

// y[i] = ExpFloat(x[i]) / ErfFloat(x[i]) for i in [0, n), vectorized per
// instruction set with the same bits.  y may be x (in place) or disjoint
// from it.
void ExpFloats(const float* x, float* y, int64_t n);
void ErfFloats(const float* x, float* y, int64_t n);

}  // namespace kernels
}  // namespace qat

#endif  // QAT_LIB_KERNELS_FLOAT_MATH_H_
