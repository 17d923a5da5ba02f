// The activations of kernels/activation.h on the vectors of an instruction
// set's traits class V (Max, Min, Set1 and Zero of sgemm_simd.h's traits),
// for the kernels that apply them before storing: the GEMM's epilogue and
// the depthwise convolution.  The same rules as sgemm_simd.h: templates
// over V only, included in V's translation unit.
#ifndef QAT_LIB_KERNELS_ACTIVATION_SIMD_H_
#define QAT_LIB_KERNELS_ACTIVATION_SIMD_H_

#include "kernels/activation.h"

namespace qat {
namespace kernels {
namespace simd {

template <class V>
struct VectorActivation {
  using F = typename V::F;
  ActivationKind kind;
  F lo, hi;  // Clip's bounds

  VectorActivation(ActivationKind k, float low, float high)
      : kind(k), lo(V::Set1(low)), hi(V::Set1(high)) {}

  // ApplyActivation's bits, lane by lane: V::Max(a, b) is a > b ? a : b and
  // V::Min(a, b) is a < b ? a : b, so Max(v, 0) is ReluValue (NaN and -0.0
  // give +0), Max(lo, v) is v < lo ? lo : v and Min(hi, v) is
  // v > hi ? hi : v, ClipValue's two selects (a NaN stays).
  F operator()(F v) const {
    if (kind == ActivationKind::kRelu) return V::Max(v, V::Zero());
    if (kind == ActivationKind::kClip) return V::Min(hi, V::Max(lo, v));
    return v;
  }
};

}  // namespace simd
}  // namespace kernels
}  // namespace qat

#endif  // QAT_LIB_KERNELS_ACTIVATION_SIMD_H_
