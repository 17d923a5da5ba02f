// The elementwise activations that kernels apply as they store an output
// (Relu, and Clip with constant bounds), after adding a bias: Relu's and
// Clip's own ops and every fused path (exec/ops/conv_activation.h) use these
// functions, so fused and unfused graphs give the same bits, NaN and -0.0
// included (Relu maps both to +0; Clip keeps them).
#ifndef QAT_LIB_KERNELS_ACTIVATION_H_
#define QAT_LIB_KERNELS_ACTIVATION_H_

#include <cstdint>

#include "kernels/target_clones.h"

namespace qat {
namespace kernels {

template <typename T>
inline T ReluValue(T v) {
  return v > 0 ? v : T(0);
}

// Max then min, so that min > max gives max, as ONNX says.
template <typename T>
inline T ClipValue(T v, T lo, T hi) {
  const T clipped = v < lo ? lo : v;
  return clipped > hi ? hi : clipped;
}

enum class ActivationKind { kNone, kRelu, kClip };

// out[0, n) = activation(out[p] + bias), with no addition when !has_bias (so
// that -0.0 stays as it is); Clip's bounds are lo and hi.  Always inlined,
// so that a caller built for an instruction set (a kernel variant or a
// QAT_TARGET_CLONES function) gets it built for that set.
template <typename T>
QAT_ALWAYS_INLINE void ApplyActivation(ActivationKind kind, T lo, T hi, T* out, int64_t n,
                                       bool has_bias, T bias) {
  auto loop = [&](auto f) {
    if (has_bias) {
      for (int64_t p = 0; p < n; ++p) out[p] = f(out[p] + bias);
    } else {
      for (int64_t p = 0; p < n; ++p) out[p] = f(out[p]);
    }
  };
  if (kind == ActivationKind::kRelu) {
    loop([](T v) { return ReluValue(v); });
  } else if (kind == ActivationKind::kClip) {
    loop([lo, hi](T v) { return ClipValue(v, lo, hi); });
  } else if (has_bias) {
    for (int64_t p = 0; p < n; ++p) out[p] += bias;
  }
}

}  // namespace kernels
}  // namespace qat

#endif  // QAT_LIB_KERNELS_ACTIVATION_H_
