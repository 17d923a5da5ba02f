// ConvTranspose's geometry and its two implementations, for the kernel in
// lib/ops/training_ops.cc and for the test that compares them.
//
// ConvTranspose is the adjoint of Conv: input position p scatters
// x[p] * w[kk] to output position corner(p) + offset(kk).  So its geometry is
// a Conv Window (lib/ops/spatial.h) read the other way round: the Window's
// `out` is ConvTranspose's input and its `in` is ConvTranspose's output.
#ifndef QAT_LIB_EXEC_OPS_TRAINING_OPS_H_
#define QAT_LIB_EXEC_OPS_TRAINING_OPS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "exec/kernel.h"
#include "exec/ops/spatial.h"
#include "qat/tensor.h"
#include "qat/thread_pool.h"

namespace qat {
namespace exec {

// The attributes, as the node gives them (vectors may be empty: defaults).
struct ConvTransposeAttrs {
  WindowAttrs window;  // kernel_shape, strides, dilations, pads, auto_pad
  std::vector<int64_t> output_padding;
  std::vector<int64_t> output_shape;  // spatial dims, or N, C and spatial dims
  int64_t group = 1;

  static ConvTransposeAttrs FromNode(const NodeView& node);
};

// X [batch, in_channels, x...] * W [in_channels, out_channels / groups, k...]
// -> Y [batch, out_channels, y...].
struct ConvTransposeShape {
  int64_t batch = 0, in_channels = 0, out_channels = 0, groups = 1;
  // window.out: X's spatial dims; window.in: Y's spatial dims; pad_begin may
  // be negative when output_shape asks for more than the natural size.
  Window window;

  std::vector<int64_t> OutputShape() const;  // Y's full shape
};

// Checks X's and W's shapes against the attributes and works out the output
// size and padding (explicit pads, output_shape or auto_pad, as ONNX's
// ConvTranspose specifies).
absl::StatusOr<ConvTransposeShape> ComputeConvTransposeShape(
    const ConvTransposeAttrs& attrs, const std::vector<int64_t>& x_shape,
    const std::vector<int64_t>& w_shape);

// The plain reference: direct scatter loops, one thread.  bias may be null.
template <typename T>
void ConvTransposeReference(const ConvTransposeShape& s, const T* x, const T* w,
                            const T* bias, T* y);

// One GEMM per group over every image (ops/gemm.h) then col2im, split into
// tasks by size only, so the result is the same for every thread count.
// `scratch` keeps the column buffer (and a copy of one group of X) from one
// call to the next.
template <typename T>
void ConvTransposeGemm(ThreadPool* pool, const ConvTransposeShape& s, const T* x,
                       const T* w, const T* bias, T* y, Tensor& scratch);

}  // namespace exec
}  // namespace qat

#endif  // QAT_LIB_EXEC_OPS_TRAINING_OPS_H_
