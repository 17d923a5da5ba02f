// Quantize: an fp32 model and a calibration table in, a QDQ model out.
//
// Every selected node (MatMul, Gemm and Conv by default) gets
// QuantizeLinear -> DequantizeLinear pairs:
//  - on its activation inputs and on its output, with the scale and zero
//    point of the calibration table's entry for that tensor;
//  - on its weight (a constant input), with a scale and zero point computed
//    from the weight's values: symmetric int8 in [-127, 127] by default,
//    per channel on the axes ONNX Runtime uses (Conv 0, MatMul 1, Gemm 0 when
//    transB else 1).  The weight stays in float behind the pair (the form QAT
//    starts from), or, with weights_as_int8, becomes an int8 initializer
//    behind a DequantizeLinear (the deployment form).
// Biases stay in float.  This is ONNX Runtime's quantize_static with
// AddQDQPairToWeight=True and QuantizeBias=False.
//
// Weights and activations below 8 bits (2..8, qat/qdq_insertion.h) are
// stored in int8/uint8 and clipped, e.g. 4-bit weights QuantizeLinear ->
// Clip(-8, 7) -> DequantizeLinear, which standard ONNX expresses from
// opset 13.  Per-node widths come from options.node_overrides and the
// table's node_overrides (the options win).
//
// A model below opset 13 is upgraded to 13 first (every op whose meaning
// changed is rewritten; value names stay), which adds a line to `warnings`;
// float tensors of Constant nodes become initializers (pass
// "promote_constants").  Any pass can be switched off by name in
// disabled_passes: opset_upgrade, promote_constants, fold_constants,
// insert_qdq, prune.
//
// Constant subexpressions in front of weights (Constant, Transpose,
// Unsqueeze, Squeeze, Reshape of initializers) are folded first.  A tensor
// shared by several nodes gets one pair.
//
// The table's entry for an activation is used as written when its type and
// grid (bits, range) are the requested ones (so hand edits survive); otherwise scale
// and zero point are recomputed from its rmin/rmax.  A table entry with role
// "weight" replaces the parameters computed from the weight's values when it
// has the requested form (per channel or not, bit width, signedness,
// symmetry, range).
//
// Errors: an activation without a table entry (naming it), an op type or
// node name that does not exist in the model, an op that the opset upgrade
// cannot rewrite, a bad table entry.
#ifndef QAT_QUANTIZE_H_
#define QAT_QUANTIZE_H_

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qat/calibration_table.h"
#include "qat/api.h"
#include "qat/model.h"
#include "qat/qdq_insertion.h"
#include "qat/quant_params.h"

namespace qat {

// The quantize stage's options: what insert_qdq quantizes and how
// (qat/qdq_insertion.h).
struct QuantizeOptions : QdqInsertionConfig {
  std::set<std::string> disabled_passes;  // pass names to skip (see above)
};

// The quantized model's metadata_props records, under this key, the absolute
// path of the model it came from (when that was a file): prepare's default
// teacher for distillation.
inline constexpr char kSourceModelMetadataKey[] = "libqat.source_model";

QAT_API absl::StatusOr<Model> QuantizeModel(const Model& model,
                                            const CalibrationTable& table,
                                            const QuantizeOptions& options = {},
                                            std::vector<std::string>* warnings = nullptr);

// A node that QuantizeModel quantizes, and the tensors it puts pairs on.
struct QuantizableNode {
  std::string name, op_type;  // name may be empty (an unnamed node)
  std::vector<std::string> activations;  // data inputs that are not initializers, and output 0
  std::vector<std::string> weights;      // initializer data inputs
};

// The nodes QuantizeModel(model, table, options) quantizes, in graph order:
// those options.op_types, include_nodes and exclude_nodes select, less the
// keep_float ones of options.node_overrides, in the graph QuantizeModel
// sees (If and Loop fixed by constants inlined, unless disabled).
// InvalidArgument for a node name in the options that the model lacks.
QAT_API absl::StatusOr<std::vector<QuantizableNode>> QuantizableNodes(
    const Model& model, const QuantizeOptions& options = {});

// The weight's channel axis for a node's input, as ONNX Runtime chooses it:
// Conv 0, MatMul 1, Gemm 0 when transB else 1.  -1 for other ops.
QAT_API int64_t WeightChannelAxis(const std::string& op_type, bool trans_b);

}  // namespace qat

#endif  // QAT_QUANTIZE_H_
