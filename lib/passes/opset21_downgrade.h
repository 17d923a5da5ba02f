// Opset21DowngradePass: the inverse of Opset21UpgradePass, from opset 21
// to 17, for the graphs that train.  ONNX 1.12 has no shape inference at
// opset 21, and gradient rules (Gemm, broadcasting Mul, ...) need shapes.
// After FuseQdqPairs a block-wise model keeps its blocks in ai.libqat
// FakeQuant, so nothing in it needs opset 21 any more; export raises it
// again (ChooseExportOpset, Opset21UpgradePass).
//
// Before (opset 21):  x ─> ReduceMean(x, axes=[-1]) ─> Split(num_outputs=2)
// After (opset 17):   x ─> ReduceMean(axes=[-1]) ─> Split
//
// Per default-domain node of the main graph:
//  1. ReduceMean, ReduceMax, ... (not ReduceSum, whose axes are an input
//     since 13): a constant `axes` input becomes the attribute; an axes
//     input computed at run time, or noop_with_empty_axes 1, is refused;
//  2. Split: num_outputs goes (core/opset21_check.h only admits the one
//     equal to its number of outputs, which is opset 13's meaning);
//  3. attributes whose default is the opset-17 meaning go when they hold
//     it: AveragePool dilations of 1, Cast saturate, QuantizeLinear and
//     DequantizeLinear block_size 0 and saturate;
//  4. refused (FailedPrecondition, naming the node): 4-bit or float8
//     initializers, Q/DQ with blocks or output_dtype, Pad's axes input,
//     ScatterElements/ScatterND reduction max/min, Resize's opset-18
//     attributes, GridSample, DFT, GroupNormalization, subgraphs.
// A refused model stays as it is: the caller decides (prepare keeps
// opset 21, with a warning).  Then the default-domain import becomes 17
// and ir_version 8.
#ifndef QAT_LIB_PASSES_OPSET21_DOWNGRADE_H_
#define QAT_LIB_PASSES_OPSET21_DOWNGRADE_H_

#include <cstdint>

#include "graph/graph_pass.h"

namespace qat {
namespace passes {

inline constexpr int64_t kDowngradeTargetOpset = 17;

class Opset21DowngradePass : public GraphPass {
 public:
  absl::string_view name() const override { return "opset21_downgrade"; }

 private:
  absl::StatusOr<bool> RunImpl(onnx::ModelProto* model) override;
};

}  // namespace passes
}  // namespace qat

#endif  // QAT_LIB_PASSES_OPSET21_DOWNGRADE_H_
