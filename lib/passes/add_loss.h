// AddLossPass: appends a loss to an inference graph.
//
// Before:  input ─> ... ─> y                        outputs: y, ...
// After:   input ─> ... ─> y ─> loss(y, labels)     inputs: ..., labels
//                                                   outputs: loss, y, ...
//
// Applies when the graph has the output that options.output names (or any
// output, when it is empty) and no value named `labels` or `loss` yet.  The
// loss ops are described in qat/loss.h.  With a teacher, the loss is the
// weighted sum of the distillation terms (options.distill), plus the
// labelled loss when label_weight > 0 (only then is `labels` an input).
#ifndef QAT_LIB_PASSES_ADD_LOSS_H_
#define QAT_LIB_PASSES_ADD_LOSS_H_

#include "graph/graph_pass.h"
#include "qat/loss.h"

namespace qat {
namespace training {

class AddLossPass : public passes::GraphPass {
 public:
  // `with_teacher`: the graph holds a teacher (AddTeacherPass) and the loss
  // is options.distill's.
  explicit AddLossPass(LossOptions options, bool with_teacher = false)
      : options_(std::move(options)), with_teacher_(with_teacher) {}
  absl::string_view name() const override { return "add_loss"; }

 private:
  absl::StatusOr<bool> RunImpl(onnx::ModelProto* model) override;
  LossOptions options_;
  bool with_teacher_;
};

}  // namespace training
}  // namespace qat

#endif  // QAT_LIB_PASSES_ADD_LOSS_H_
