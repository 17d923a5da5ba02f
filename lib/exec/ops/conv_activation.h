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
#include "kernels/activation.h"
#include "kernels/sgemm_variants.h"
#include "kernels/target_clones.h"

namespace qat {
namespace exec {

using kernels::ClipValue;
using kernels::ReluValue;

struct ConvActivation {
  using Kind = kernels::ActivationKind;
  Kind kind = Kind::kNone;
  // Clip's bounds; an absent one is the type's lowest or largest value.
  bool has_lo = false, has_hi = false;
  float lo = 0.0f, hi = 0.0f;
  // The bounds were float32 tensors (Clip-11 and later), which only a
  // float32 X may take; before opset 11 they are attributes, cast to X's type.
  bool float_tensor_bounds = false;

  bool none() const { return kind == Kind::kNone; }

  // Clip's bounds in T: an absent one is T's lowest or largest value.
  template <typename T>
  T low() const {
    return has_lo ? static_cast<T>(lo) : std::numeric_limits<T>::lowest();
  }
  template <typename T>
  T high() const {
    return has_hi ? static_cast<T>(hi) : std::numeric_limits<T>::max();
  }

  // out[0, n) = activation(out[p] + bias) (no addition when !has_bias, so
  // that -0.0 stays as the unfused Conv leaves it).
  template <typename T>
  QAT_ALWAYS_INLINE void Apply(T* out, int64_t n, bool has_bias, T bias) const {
    kernels::ApplyActivation(kind, low<T>(), high<T>(), out, n, has_bias, bias);
  }

  // The same, for a float GEMM to apply as it stores each tile, with the
  // bias of each row of C (may be null).
  kernels::SgemmEpilogue Epilogue(const float* row_bias) const {
    return {row_bias, kind, low<float>(), high<float>()};
  }
};

// Conv whose output write applies `activation` (MakeConv is this with none).
absl::StatusOr<Kernel> MakeConvWithActivation(const NodeView& node,
                                              const ConvActivation& activation);

}  // namespace exec
}  // namespace qat

#endif  // QAT_LIB_EXEC_OPS_CONV_ACTIVATION_H_
