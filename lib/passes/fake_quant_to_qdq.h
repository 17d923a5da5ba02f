// FakeQuantToQdqPass: FakeQuant becomes QuantizeLinear -> DequantizeLinear
// again, for export (the inverse of fuse_qdq_to_fake_quant).
//
// Before:  x ─> FakeQuant(s, z) ─> y             W ─> FakeQuant(s, z) ─> W'
// After:   x ─> QuantizeLinear(s, z) ─> [Clip] ─> DequantizeLinear(s, z) ─> y
//          W_int8 ─> DequantizeLinear(s, z) ─> W'   (config.int8_weights)
//
// Applies to every FakeQuant (com.microsoft per tensor, ai.libqat per
// channel), with its (trained) scale and zero point, when:
//  1. its mask output is not read (an inference graph, not a training one);
//  2. its range fits int8 (signed) or uint8 storage.
// A learned zero point is real-valued: it stands for its rounding in the
// range.  A range narrower than the storage type is expressed with a Clip
// (or, for stored weights, by the stored values themselves).  With
// int8_weights, a constant input (a weight) is stored quantized with
// FakeQuant's own arithmetic (stored_weights.h), so the dequantized weight
// is bit-identical to what FakeQuant computed in training.  At opset 21
// (config.opset), 4-bit stored weights are packed two per byte and the
// per-block grids of ai.libqat FakeQuant(block_size) carry over as
// QuantizeLinear / DequantizeLinear-21's block_size; at 13 a block-wise
// FakeQuant is Unimplemented.  A packed weight's 2-D block scales that are
// uint8 codes times a power-of-two step per output channel are written so:
// uint8 codes -> DequantizeLinear(step, axis) -> the block DequantizeLinear's
// scale; a packed signed weight with an all-zero zero point has none.
#ifndef QAT_LIB_PASSES_FAKE_QUANT_TO_QDQ_H_
#define QAT_LIB_PASSES_FAKE_QUANT_TO_QDQ_H_

#include "graph/graph_pass.h"

namespace qat {
namespace passes {

struct FakeQuantToQdqConfig {
  // Store constant inputs as integers behind a DequantizeLinear.
  bool int8_weights = true;
  // 13, or 21 for a model that Opset21UpgradePass raised: stored weights
  // whose range fits 4 bits become packed INT4 / UINT4 (with their zero
  // point), and block-wise FakeQuant (which needs 21) becomes
  // DequantizeLinear-21 with block_size.
  int64_t opset = 13;
  // Packed block-wise weights (opset 21): snap 2-D block scales that are not
  // yet uint8 codes times a power-of-two step per output channel to that
  // form (core/uint8_block_scales.h; lossy: the weight is stored on the
  // snapped grid).  Scales already of that form are written so either way.
  bool uint8_block_scales = false;
};

class FakeQuantToQdqPass : public GraphPass {
 public:
  explicit FakeQuantToQdqPass(FakeQuantToQdqConfig config = {}) : config_(config) {}
  absl::string_view name() const override { return "fake_quant_to_qdq"; }

 private:
  absl::StatusOr<bool> RunImpl(onnx::ModelProto* model) override;
  FakeQuantToQdqConfig config_;
};

}  // namespace passes
}  // namespace qat

#endif  // QAT_LIB_PASSES_FAKE_QUANT_TO_QDQ_H_
