// FuseQdqToFakeQuantPass: QuantizeLinear -> [Clip] -> DequantizeLinear
// becomes one differentiable FakeQuant node.
//
// Before:  x ─> QuantizeLinear(s, z) ─> [Clip(lo, hi)] ─> DequantizeLinear(s, z) ─> y
// After:   x ─> FakeQuant(s, z) ─> y          (and a mask output for training)
//
// Applies when:
//  1. the scale and zero point of Q and DQ are the same constants
//     (initializers, or Constant nodes' values);
//  2. Q's output (and Clip's) feeds nothing but the next node of the chain;
//     a Q with other consumers is left alone, with a warning;
//  3. a Clip between them has constant integer bounds, which narrow the
//     range (4-bit weights, symmetric int8 at [-127, 127]).
// The range is the zero point's type (uint8 when the zero point is absent,
// as ONNX defines), narrowed by the Clip.  Per-tensor pairs become
// com.microsoft FakeQuant (scale and zero point as float scalars, ONNX
// Runtime's schema); per-axis pairs become ai.libqat FakeQuant with `axis`,
// and opset 21's block-wise pairs ai.libqat FakeQuant with `axis` and
// `block_size` (Q and DQ must agree on both).
// A non-constant scale or zero point is an error naming the node.
#ifndef QAT_LIB_PASSES_FUSE_QDQ_TO_FAKE_QUANT_H_
#define QAT_LIB_PASSES_FUSE_QDQ_TO_FAKE_QUANT_H_

#include <string>
#include <vector>

#include "graph/graph_pass.h"

namespace qat {
namespace passes {

class FuseQdqToFakeQuantPass : public GraphPass {
 public:
  absl::string_view name() const override { return "fuse_qdq_to_fake_quant"; }
  // Pairs left alone, one line each, for the caller to report.
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  absl::StatusOr<bool> RunImpl(onnx::ModelProto* model) override;
  std::vector<std::string> warnings_;
};

}  // namespace passes
}  // namespace qat

#endif  // QAT_LIB_PASSES_FUSE_QDQ_TO_FAKE_QUANT_H_
