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
//     tensor or per channel, zero point 0 for int8;
//  4. a tensor is quantized once, however many nodes read it.
// The graph is re-sorted topologically at the end.
#ifndef QAT_LIB_PASSES_INSERT_QDQ_H_
#define QAT_LIB_PASSES_INSERT_QDQ_H_

#include "passes/graph_pass.h"
#include "qat/calibration_table.h"
#include "qat/quantize.h"

namespace qat {
namespace passes {

class InsertQdqPass : public GraphPass {
 public:
  InsertQdqPass(const CalibrationTable& table, const QuantizeOptions& options)
      : table_(table), options_(options) {}
  absl::string_view name() const override { return "insert_qdq"; }

 private:
  absl::StatusOr<bool> RunImpl(onnx::ModelProto* model) override;
  const CalibrationTable& table_;
  QuantizeOptions options_;
};

}  // namespace passes
}  // namespace qat

#endif  // QAT_LIB_PASSES_INSERT_QDQ_H_
