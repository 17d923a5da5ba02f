// InsertQdqPass: QuantizeLinear -> DequantizeLinear pairs around the
// selected nodes (see qat/quantize.h for the user-facing contract).
//
// Before:  x ─> MatMul(W) ─> y
// After:   x ─> Q ─> DQ ─> MatMul(W') ─> y' ─> Q ─> DQ ─> y
//          W ─> Q ─> DQ ─> W'   (or W_int8 ─> DQ ─> W')
//
// Applies to every node whose op type is selected and whose name is not
// excluded.  Conditions and algebra:
//  1. activation inputs and the output need a calibration-table entry; the
//     output's producer is renamed (y') so that y now names the dequantized
//     value and every consumer, including graph outputs, reads it;
//  2. a graph input is not renamed; the node reads its DQ output instead;
//  3. a weight (initializer) gets scale = max|w| / 127 (symmetric), per
//     tensor or per channel, zero point 0 for int8; at other widths the
//     range QuantRangeForBits gives (a node override's width for that node),
//     from the MSE-optimal clip at 2 and 3 bits (UsesMseWeightClip);
//  3a. a grid narrower than int8/uint8 gets a Clip between Q and DQ;
//  4. a tensor is quantized once, however many nodes read it.
// The graph is re-sorted topologically at the end.
#ifndef QAT_LIB_PASSES_INSERT_QDQ_H_
#define QAT_LIB_PASSES_INSERT_QDQ_H_

#include <string>
#include <utility>
#include <vector>

#include "graph/graph_pass.h"
#include "qat/calibration_table.h"
#include "qat/qdq_insertion.h"
#include "qat/quant_params.h"

namespace qat {
namespace passes {

// What to quantize and how (qat::QuantizeOptions extends it for the
// quantize stage).
using InsertQdqConfig = QdqInsertionConfig;

// The weight's channel axis for a node's input, as ONNX Runtime chooses it:
// Conv 0, MatMul 1, Gemm 0 when transB else 1.  -1 for other ops.
int64_t WeightChannelAxis(const std::string& op_type, bool trans_b);

// Whether weights at this width take their range from the MSE-optimal clip
// rather than from min/max (2 and 3 bits): so the quantized start, and
// LSQ's initial scale, do not spend the few levels on outliers.
bool UsesMseWeightClip(int weight_bits);

class InsertQdqPass : public GraphPass {
 public:
  InsertQdqPass(const CalibrationTable& table, InsertQdqConfig config)
      : table_(table), options_(std::move(config)) {}
  absl::string_view name() const override { return "insert_qdq"; }

 private:
  absl::StatusOr<bool> RunImpl(onnx::ModelProto* model) override;
  const CalibrationTable& table_;
  InsertQdqConfig options_;
};

}  // namespace passes
}  // namespace qat

#endif  // QAT_LIB_PASSES_INSERT_QDQ_H_
