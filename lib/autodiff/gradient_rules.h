// Gradient rules: for one forward node, emit the standard ONNX nodes that
// compute the gradients of its inputs from the gradients of its outputs.
//
// Every rule is a function registered once in gradient_rule_list.h.  Rules
// emit standard ONNX ops only (the executor may fuse patterns internally, but
// the training graph stays portable to any ONNX runtime).
#ifndef QAT_LIB_AUTODIFF_GRADIENT_RULES_H_
#define QAT_LIB_AUTODIFF_GRADIENT_RULES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "onnx/onnx_pb.h"
#include "graph/graph_editor.h"

namespace qat {
namespace training {

class GradContext {
 public:
  GradContext(GraphEditor& editor, const onnx::NodeProto& node,
              std::vector<std::string> output_grads,
              std::vector<bool> wants_input_grad);

  GraphEditor& g() { return editor_; }
  const onnx::NodeProto& node() const { return node_; }

  // Input or output names ("" for an absent optional one).
  const std::string& input(int i) const;
  const std::string& output(int i) const;
  int num_inputs() const { return node_.input_size(); }

  // dLoss/d(output i), or "" when no gradient flows into that output.
  const std::string& output_grad(int i) const;
  // True when the builder needs dLoss/d(input i).
  bool wants(int i) const;
  // Records dLoss/d(input i).  Ignored when not wanted.
  void SetInputGrad(int i, std::string grad);
  const std::vector<std::string>& input_grads() const { return input_grads_; }

  // A name hint for new values: "<node output>_grad_<what>".
  std::string Hint(const std::string& what) const;

  // The value's shape; an InvalidArgument naming the node when shape
  // inference did not record it (or only its rank, with `need_dims`).
  absl::StatusOr<ValueShape> Shape(const std::string& name,
                                   bool need_dims = false) const;

  // Sums `grad` (shaped like output `out`) over the axes along which input
  // `in` was broadcast, so that the result has input `in`'s shape.
  absl::StatusOr<std::string> Unbroadcast(const std::string& grad, int in,
                                          int out = 0);

  // An error that names the node and says what is unsupported.
  absl::Status Unsupported(const std::string& what) const;

 private:
  GraphEditor& editor_;
  const onnx::NodeProto& node_;
  std::vector<std::string> output_grads_;
  std::vector<bool> wants_;
  std::vector<std::string> input_grads_;
};

using GradRule = absl::Status (*)(GradContext& ctx);

// The rule for an op, or nullptr when it has none.
GradRule FindGradRule(const std::string& domain, const std::string& op_type);

// True for ops whose outputs carry no gradient (shapes, comparisons,
// integer plumbing): the builder stops there without error.
bool IsNonDifferentiable(const std::string& domain, const std::string& op_type);

// Declarations of every rule, from the manifest.
#define QAT_GRAD_RULE(domain, op, fn) absl::Status fn(GradContext& ctx);
#include "autodiff/gradient_rule_list.h"
#undef QAT_GRAD_RULE

}  // namespace training
}  // namespace qat

#endif  // QAT_LIB_AUTODIFF_GRADIENT_RULES_H_
