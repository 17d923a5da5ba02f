// AddLossPass: appends a loss to an inference graph.
//
// Before:  input ─> ... ─> y                        outputs: y, ...
// After:   input ─> ... ─> y ─> loss(y, labels)     inputs: ..., labels
//                                                   outputs: loss, y, ...
//
// Applies when the graph has the output that options.output names (or any
// output, when it is empty) and no value named `labels` or `loss` yet.  The
// loss ops are described in qat/loss.h.
#ifndef QAT_LIB_PASSES_ADD_LOSS_H_
#define QAT_LIB_PASSES_ADD_LOSS_H_

#include "graph/graph_pass.h"
#include "qat/loss.h"

namespace qat {
namespace training {

class AddLossPass : public passes::GraphPass {
 public:
  explicit AddLossPass(LossOptions options) : options_(std::move(options)) {}
  absl::string_view name() const override { return "add_loss"; }

 private:
  absl::StatusOr<bool> RunImpl(onnx::ModelProto* model) override;
  LossOptions options_;
};

}  // namespace training
}  // namespace qat

#endif  // QAT_LIB_PASSES_ADD_LOSS_H_
