// Gradient rules: for one forward node, emit the standard ONNX nodes that
// compute the gradients of its inputs from the gradients of its outputs.
//
// Every rule is a function registered once in gradient_rule_list.h, with the
// op's differentiable inputs beside it; that manifest is the only place that
// says which inputs carry a gradient (GradInputs, FindGradOp).  Rules emit
// standard ONNX ops only (the executor may fuse patterns internally, but the
// training graph stays portable to any ONNX runtime).
#ifndef QAT_LIB_AUTODIFF_GRADIENT_RULES_H_
#define QAT_LIB_AUTODIFF_GRADIENT_RULES_H_

#include <cstdint>
#include <optional>
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
  // True when the builder needs dLoss/d(input i); the builder asks only for
  // inputs that the manifest declares differentiable.
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
  // `in` was broadcast, so that the result has input `in`'s shape.  Only the
  // ranks must be known: an axis whose input size is not static (and not
  // the output's, by name) is reduced or not at run time, as Shape says.
  absl::StatusOr<std::string> Unbroadcast(const std::string& grad, int in,
                                          int out = 0);
  // The same for any value `x` that `grad` (shaped like `y`) broadcast from.
  absl::StatusOr<std::string> UnbroadcastTo(const std::string& grad, const std::string& x,
                                            const std::string& y);

  // A Shape node of `name`: its dims at run time, as a 1-D int64 tensor.
  std::string RuntimeShape(const std::string& name);
  // Shape(name)'s elements [begin, end) (end past the rank: to the end).
  std::string RuntimeDims(const std::string& name, int64_t begin, int64_t end);
  // The number of elements of `x` along `axes` (all axes when empty), as a
  // float scalar: a constant when those dims are static, else computed.
  absl::StatusOr<std::string> ElementCount(const std::string& x, std::vector<int64_t> axes);

  // Raises the graph's default-domain opset for an op the gradient needs
  // (GraphEditor::RaiseOpset); an error naming the node and `why`.
  absl::Status RequireOpset(int64_t version, const std::string& why);

  // An error that names the node and says what is unsupported.
  absl::Status Unsupported(const std::string& what) const;

 private:
  GraphEditor& editor_;
  const onnx::NodeProto& node_;
  std::vector<std::string> output_grads_;
  std::vector<bool> wants_;
  std::vector<std::string> input_grads_;
};

// The int64 (or int32) values of a constant input: an initializer or a
// Constant node's value; nullopt when `name` is computed.  Unsupported
// (naming the node) for another type.
absl::StatusOr<std::optional<std::vector<int64_t>>> ConstantInts(GradContext& ctx,
                                                                const std::string& name);

using GradRule = absl::Status (*)(GradContext& ctx);

// The input slots of an op that carry a gradient, as the manifest declares
// them: Inputs(0, 2), AllInputs(), Inputs(0).QuantParams(1, 2).
class GradInputs {
 public:
  constexpr GradInputs() = default;
  // All slots of a variadic op.
  static constexpr GradInputs All() { return GradInputs(~uint64_t{0}, 0, true); }
  template <typename... Slots>
  static constexpr GradInputs Of(Slots... slots) {
    return GradInputs(((uint64_t{1} << slots) | ... | uint64_t{0}), 0, false);
  }
  // The same slots plus `slots`, quantization parameters: differentiable,
  // but trainable only when quantization parameters are learned (LSQ).
  template <typename... Slots>
  constexpr GradInputs QuantParams(Slots... slots) const {
    const uint64_t q = ((uint64_t{1} << slots) | ... | uint64_t{0});
    return GradInputs(mask_ | q, quant_ | q, all_);
  }

  bool any() const { return mask_ != 0; }
  bool differentiable(int slot) const {
    return slot >= 0 && (slot < 64 ? (mask_ >> slot) & 1 : all_);
  }
  bool quant_param(int slot) const { return slot >= 0 && slot < 64 && (quant_ >> slot) & 1; }

 private:
  constexpr GradInputs(uint64_t mask, uint64_t quant, bool all)
      : mask_(mask), quant_(quant), all_(all) {}
  uint64_t mask_ = 0;   // bit i: input i is differentiable
  uint64_t quant_ = 0;  // bit i: input i is a quantization parameter
  bool all_ = false;    // slots from 64 on too
};

// The spellings the manifest uses.
template <typename... Slots>
constexpr GradInputs Inputs(Slots... slots) { return GradInputs::Of(slots...); }
constexpr GradInputs AllInputs() { return GradInputs::All(); }

// One entry of the manifest.
struct GradOp {
  const char* domain;   // "" for the default domain
  const char* op_type;
  GradInputs inputs;    // none: the op's outputs carry no gradient
  GradRule rule;        // null: no rule (QAT_NO_GRAD, QAT_GRAD_MISSING)
};

// Every entry of the manifest, in its order.
const std::vector<GradOp>& GradOps();

// The manifest's entry for an op ("ai.onnx" is the default domain), or
// nullptr when the op is not listed.
const GradOp* FindGradOp(const std::string& domain, const std::string& op_type);

// True for ops whose outputs carry no gradient (shapes, comparisons,
// integer plumbing): the builder stops there without error.
bool IsNonDifferentiable(const std::string& domain, const std::string& op_type);

// Whether input `slot` of `node` may hold a trainable parameter: a
// differentiable input (a quantization parameter only when
// `learn_quant_params`), or any input of an op the manifest does not list
// (the builder then reports the op if a gradient must cross it).
bool IsTrainableInput(const onnx::NodeProto& node, int slot, bool learn_quant_params);

// Declarations of every rule, from the manifest.
#define QAT_GRAD_RULE(domain, op, inputs, fn) absl::Status fn(GradContext& ctx);
#include "autodiff/gradient_rule_list.h"
#undef QAT_GRAD_RULE

}  // namespace training
}  // namespace qat

#endif  // QAT_LIB_AUTODIFF_GRADIENT_RULES_H_
