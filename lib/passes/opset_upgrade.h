// OpsetUpgradePass: rewrites a model of the default ONNX domain from an old
// opset (1-12) to opset 13, the opset every stage after it expects.
// paddle2onnx writes opset 9-11, and ONNX's own version converter fails on
// such models (Softmax 12->13 needs shapes it does not have).
//
// Before (opset 9):  x ─> Softmax(axis=1) ─> Clip(min=0, max=6) ─> Squeeze(axes=[2])
// After (opset 13):  x ─> Softmax(axis=1) ─> Clip(x, 0, 6) ─> Squeeze(x, [2])
//
// Applies when the model imports the default domain below 13; then, per node
// of the main graph, for the ops whose meaning or spelling changed:
//  1. Softmax, LogSoftmax, Hardmax: before 13 they flattened the input to 2-D
//     at `axis` (default 1).  When `axis` is the last axis (known from the
//     inferred rank, or -1) that is the same as the new single-axis form;
//     otherwise Flatten(axis) -> op(axis=-1) -> Reshape(Shape(x)) computes
//     exactly the old result;
//  2. attributes that became inputs: Clip min/max (11), Pad pads/value (11),
//     Slice starts/ends/axes/steps (10), Squeeze/Unsqueeze/Split/ReduceSum
//     axes and split (13), Dropout ratio (12), Reshape shape (5), TopK k (10);
//  3. Upsample (7-9) and Resize-10 become Resize-13 with the old coordinate
//     rule: coordinate_transformation_mode "asymmetric", and nearest_mode
//     "floor" for mode "nearest";
//  4. BatchNormalization: `spatial` (only 1 is supported, as in opset 9 on),
//     `is_test` and `consumed_inputs` go; its outputs stay as they are
//     (opset 13 has the same optional outputs);
//  5. legacy broadcasting (before 7): `broadcast` goes from Add, Sub, Mul,
//     Div, Pow, Gemm, And, Or, Xor, Equal, Greater and Less;
//     an `axis` that does not align B with A's trailing dimensions reshapes
//     B when it is an initializer (Unimplemented otherwise);
//  6. `consumed_inputs` (before 6) goes from every op;
//  7. Scatter (deprecated in 11) becomes ScatterElements, the same op.
// Then the default-domain import becomes 13 (and ir_version at least 7).
// Subgraphs of If and Loop are not rewritten.  Value names stay: every
// rewritten node keeps its outputs, so calibration tables and parameter
// names still apply.
#ifndef QAT_LIB_PASSES_OPSET_UPGRADE_H_
#define QAT_LIB_PASSES_OPSET_UPGRADE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "graph/graph_pass.h"
#include "graph/pass_pipeline.h"

namespace qat {
namespace passes {

inline constexpr int64_t kUpgradeTargetOpset = 13;

// The model's default-domain opset (0 when it imports none).
int64_t DefaultOpset(const onnx::ModelProto& model);

class OpsetUpgradePass : public GraphPass {
 public:
  absl::string_view name() const override { return "opset_upgrade"; }

  // After Run: the opset it upgraded from, 0 when it changed nothing.
  int64_t upgraded_from() const { return upgraded_from_; }
  // After Run: appends "'<source>' imports opset N; upgraded it to opset
  // 13" to `warnings` (when not null) if it upgraded the model.
  void ReportWarning(const std::string& source, std::vector<std::string>* warnings) const;

 private:
  int64_t upgraded_from_ = 0;
  absl::StatusOr<bool> RunImpl(onnx::ModelProto* model) override;
};

// Opset21UpgradePass: from opset 13-17 to 21, for exports with packed
// 4-bit weights (DequantizeLinear-21).  Per node of the main graph, for the
// ops whose spelling changed in a way an older node does not already meet:
//  1. ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2,
//     ReduceLogSum, ReduceLogSumExp, ReduceSumSquare: `axes` became an input
//     at opset 18;
//  2. Split without a `split` input gets num_outputs (required since 18);
//  3. GridSample and DFT changed at opset 20 into forms libqat does not run:
//     Unimplemented.
// Every other supported op either did not change or only gained types or
// optional attributes whose defaults keep the old meaning (Pad, Resize,
// AveragePool, LpPool, ScatterElements, Cast, Reshape, Shape, ...);
// core/opset21_check.h refuses the forms libqat does not run.  Then the
// default-domain import becomes 21 and ir_version 10.  Subgraphs of If and
// Loop are not rewritten (the pass refuses a model that has them).
inline constexpr int64_t kInt4ExportOpset = 21;

// The Reduce ops whose `axes` became an input at opset 18 (ReduceSum's
// did at 13): Opset21UpgradePass's rule 1, undone by Opset21DowngradePass.
bool ReduceAxesBecameInputAt18(const std::string& op);

class Opset21UpgradePass : public GraphPass {
 public:
  absl::string_view name() const override { return "opset21_upgrade"; }

 private:
  absl::StatusOr<bool> RunImpl(onnx::ModelProto* model) override;
};

// The passes every stage that reads a user's model starts with:
// opset_upgrade, then promote_constants (passes/promote_constants.h).
// Returns the upgrade pass, for its warning after the pipeline ran.
OpsetUpgradePass& AddUpgradePasses(PassPipeline* pipeline);

}  // namespace passes
}  // namespace qat

#endif  // QAT_LIB_PASSES_OPSET_UPGRADE_H_
