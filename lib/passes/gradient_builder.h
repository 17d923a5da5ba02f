// BuildGradientsPass: reverse-mode differentiation of an ONNX graph.
//
// Before:  params ─> forward nodes ─> loss            outputs: loss, ...
// After:   params ─> forward nodes ─> loss
//                        └─ backward nodes ─> <param>_grad ...
//                                             outputs: loss, <param>_grad...
//
// Applies when:
//  1. `loss` names a float scalar value of the graph;
//  2. every node on a path from a parameter to the loss has a gradient rule
//     (gradient_rule_list.h) or is non-differentiable;
//  3. shape inference has run, so that rules can read shapes.  Ranks it
//     left unknown behind a computed Reshape or Expand target are completed
//     first (dims the builder cannot tell stay -1, and rules compute them
//     in the graph), so a dynamic batch and run-time shapes work.
//
// A rule may raise the graph's opset (GraphEditor::RaiseOpset): repeated
// Gather indices and overlapping MaxPool windows need ScatterElements'
// reduction "add" (opset 16).
//
// The backward graph uses standard ONNX ops only.  Gradients of a value used
// by several nodes are added.  The forward graph is adjusted for training:
// MaxPool gains its Indices output, Dropout runs in training mode with its
// mask, SoftmaxCrossEntropyLoss exposes log_prob.
//
// With `accumulate`, each <param>_grad output becomes
// Where(lazy_reset_grad, grad, <param>_grad.accumulation_buffer + grad),
// with the buffers and the bool scalar lazy_reset_grad as new graph inputs:
// the caller feeds the previous step's outputs back to accumulate.
#ifndef QAT_LIB_PASSES_GRADIENT_BUILDER_H_
#define QAT_LIB_PASSES_GRADIENT_BUILDER_H_

#include <string>
#include <vector>

#include "graph/graph_pass.h"

namespace qat {
namespace training {

// Names of the inputs that gradient accumulation adds.
inline constexpr char kLazyResetGrad[] = "lazy_reset_grad";
inline constexpr char kAccumulationBufferSuffix[] = "_grad.accumulation_buffer";

struct BuildGradientsConfig {
  // Differentiates `loss` with respect to `params` (float initializers).
  std::string loss;
  std::vector<std::string> params;
  // Gradient accumulation inputs (see above).
  bool accumulate = false;
};

class BuildGradientsPass : public passes::GraphPass {
 public:
  explicit BuildGradientsPass(BuildGradientsConfig config) : config_(std::move(config)) {}
  BuildGradientsPass(std::string loss, std::vector<std::string> params,
                     bool accumulate = false)
      : BuildGradientsPass(BuildGradientsConfig{std::move(loss), std::move(params), accumulate}) {}

  absl::string_view name() const override { return "build_gradients"; }

 private:
  absl::StatusOr<bool> RunImpl(onnx::ModelProto* model) override;

  BuildGradientsConfig config_;
};

}  // namespace training
}  // namespace qat

#endif  // QAT_LIB_PASSES_GRADIENT_BUILDER_H_
