// The elementwise activation that the executor fuses into a Conv (Relu, or
// Clip with constant bounds), applied in the Conv's output write after the
// bias.  Relu's and Clip's own kernels use the same functions, so a fused
// Conv gives the bits of Conv followed by the separate op, NaN and -0.0
// included (Relu maps both to +0; Clip keeps them).
#ifndef QAT_LIB_EXEC_OPS_CONV_ACTIVATION_H_
#define QAT_LIB_EXEC_OPS_CONV_ACTIVATION_H_

#include <cstdint>
#include <limits>

#include "absl/status/statusor.h"
#include "exec/kernel.h"
#include "kernels/target_clones.h"

namespace qat {
namespace exec {

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

struct ConvActivation {
  enum class Kind { kNone, kRelu, kClip };
  Kind kind = Kind::kNone;
  // Clip's bounds; an absent one is the type's lowest or largest value.
  bool has_lo = false, has_hi = false;
  float lo = 0.0f, hi = 0.0f;
  // The bounds were float32 tensors (Clip-11 and later), which only a
  // float32 X may take; before opset 11 they are attributes, cast to X's type.
  bool float_tensor_bounds = false;

  bool none() const { return kind == Kind::kNone; }

  // out[0, n) = activation(out[p] + bias) (no addition when !has_bias, so
  // that -0.0 stays as the unfused Conv leaves it).
  // Always inlined, so that a caller cloned per instruction set
  // (QAT_TARGET_CLONES) gets it compiled for each.
  template <typename T>
  QAT_ALWAYS_INLINE void Apply(T* out, int64_t n, bool has_bias, T bias) const {
    if (kind == Kind::kRelu) {
      Loop(out, n, has_bias, bias, [](T v) { return ReluValue(v); });
    } else if (kind == Kind::kClip) {
      const T l = has_lo ? static_cast<T>(lo) : std::numeric_limits<T>::lowest();
      const T h = has_hi ? static_cast<T>(hi) : std::numeric_limits<T>::max();
      Loop(out, n, has_bias, bias, [l, h](T v) { return ClipValue(v, l, h); });
    } else if (has_bias) {
      for (int64_t p = 0; p < n; ++p) out[p] += bias;
    }
  }

 private:
  template <typename T, typename F>
  QAT_ALWAYS_INLINE static void Loop(T* out, int64_t n, bool has_bias, T bias, F f) {
    if (has_bias) {
      for (int64_t p = 0; p < n; ++p) out[p] = f(out[p] + bias);
    } else {
      for (int64_t p = 0; p < n; ++p) out[p] = f(out[p]);
    }
  }
};

// Conv whose output write applies `activation` (MakeConv is this with none).
absl::StatusOr<Kernel> MakeConvWithActivation(const NodeView& node,
                                              const ConvActivation& activation);

}  // namespace exec
}  // namespace qat

#endif  // QAT_LIB_EXEC_OPS_CONV_ACTIVATION_H_
