#include "autodiff/gradient_rules.h"

#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/onnx_tensor.h"
#include "qat/tensor.h"

namespace qat {
namespace training {

GradContext::GradContext(GraphEditor& editor, const onnx::NodeProto& node,
                         std::vector<std::string> output_grads,
                         std::vector<bool> wants_input_grad)
    : editor_(editor),
      node_(node),
      output_grads_(std::move(output_grads)),
      wants_(std::move(wants_input_grad)),
      input_grads_(node.input_size()) {}

const std::string& GradContext::input(int i) const {
  static const std::string kNone;
  return i < node_.input_size() ? node_.input(i) : kNone;
}

const std::string& GradContext::output(int i) const {
  static const std::string kNone;
  return i < node_.output_size() ? node_.output(i) : kNone;
}

const std::string& GradContext::output_grad(int i) const {
  static const std::string kNone;
  return i < static_cast<int>(output_grads_.size()) ? output_grads_[i] : kNone;
}

bool GradContext::wants(int i) const {
  return i < static_cast<int>(wants_.size()) && wants_[i];
}

void GradContext::SetInputGrad(int i, std::string grad) {
  if (wants(i)) input_grads_[i] = std::move(grad);
}

std::string GradContext::Hint(const std::string& what) const {
  return absl::StrCat(node_.output_size() > 0 ? node_.output(0) : node_.name(),
                      "_grad_", what);
}

absl::StatusOr<ValueShape> GradContext::Shape(const std::string& name,
                                              bool need_dims) const {
  std::optional<ValueShape> s = editor_.ShapeOf(name);
  if (!s.has_value() || !s->rank_known) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the gradient of ", DescribeNode(node_),
        " needs the shape of '", name,
        "', which shape inference did not determine"));
  }
  if (need_dims && !s->fully_known()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the gradient of ", DescribeNode(node_), " needs static dimensions of '",
        name, "', but its shape is [", absl::StrJoin(s->dims, ","), "]"));
  }
  return *s;
}

absl::StatusOr<std::string> GradContext::Unbroadcast(const std::string& grad,
                                                     int in, int out) {
  absl::StatusOr<ValueShape> xs = Shape(input(in));
  if (!xs.ok()) return xs.status();
  absl::StatusOr<ValueShape> ys = Shape(output(out));
  if (!ys.ok()) return ys.status();
  const int64_t lead = ys->rank() - xs->rank();
  if (lead < 0) {
    return absl::InternalError(absl::StrCat(
        DescribeNode(node_), ": input '", input(in),
        "' has a higher rank than the output"));
  }
  std::string g = grad;
  if (lead > 0) {
    std::vector<int64_t> axes(static_cast<size_t>(lead));
    for (int64_t a = 0; a < lead; ++a) axes[a] = a;
    g = editor_.ReduceSum(g, axes, /*keepdims=*/false, Hint("unbroadcast"));
  }
  // Axes where the input had size 1 and the output did not.  An unknown
  // input dimension is taken as not broadcast.
  std::vector<int64_t> ones;
  for (int64_t a = 0; a < xs->rank(); ++a) {
    const int64_t xd = xs->dims[a], yd = ys->dims[a + lead];
    if (xd == 1 && yd != 1) ones.push_back(a);
  }
  if (!ones.empty()) {
    g = editor_.ReduceSum(g, ones, /*keepdims=*/true, Hint("unbroadcast"));
  }
  return g;
}

absl::Status GradContext::Unsupported(const std::string& what) const {
  return absl::UnimplementedError(absl::StrCat(
      "no gradient for ", DescribeNode(node_), ": ", what));
}

absl::StatusOr<std::optional<std::vector<int64_t>>> ConstantInts(GradContext& ctx,
                                                                const std::string& name) {
  const onnx::TensorProto* proto = ctx.g().FindConstant(name);
  if (proto == nullptr) return std::optional<std::vector<int64_t>>();
  absl::StatusOr<Tensor> t = TensorFromProto(*proto);
  if (!t.ok()) return t.status();
  std::vector<int64_t> values;
  if (t->dtype() == DataType::kInt64) {
    values.assign(t->values<int64_t>().begin(), t->values<int64_t>().end());
  } else if (t->dtype() == DataType::kInt32) {
    values.assign(t->values<int32_t>().begin(), t->values<int32_t>().end());
  } else {
    return ctx.Unsupported(absl::StrCat("'", name, "' of a type other than int32/int64"));
  }
  return std::optional<std::vector<int64_t>>(std::move(values));
}

const std::vector<GradOp>& GradOps() {
  static const std::vector<GradOp>* const ops = new std::vector<GradOp>{
#define QAT_GRAD_RULE(domain, op, inputs, fn) {domain, op, inputs, fn},
#define QAT_GRAD_MISSING(domain, op, inputs) {domain, op, inputs, nullptr},
#define QAT_NO_GRAD(domain, op) {domain, op, GradInputs(), nullptr},
#include "autodiff/gradient_rule_list.h"
#undef QAT_GRAD_RULE
#undef QAT_GRAD_MISSING
#undef QAT_NO_GRAD
  };
  return *ops;
}

const GradOp* FindGradOp(const std::string& domain, const std::string& op_type) {
  // Keyed by domain and op type; built once, read by every pass over a graph.
  static const auto* const index = [] {
    auto* m = new std::unordered_map<std::string, const GradOp*>();
    for (const GradOp& op : GradOps()) {
      m->emplace(absl::StrCat(op.domain, "/", op.op_type), &op);
    }
    return m;
  }();
  const auto it =
      index->find(absl::StrCat(domain == "ai.onnx" ? "" : domain, "/", op_type));
  return it == index->end() ? nullptr : it->second;
}

bool IsNonDifferentiable(const std::string& domain, const std::string& op_type) {
  const GradOp* op = FindGradOp(domain, op_type);
  return op != nullptr && !op->inputs.any();
}

bool IsTrainableInput(const onnx::NodeProto& node, int slot, bool learn_quant_params) {
  const GradOp* op = FindGradOp(node.domain(), node.op_type());
  if (op == nullptr) return true;
  return op->inputs.differentiable(slot) &&
         (learn_quant_params || !op->inputs.quant_param(slot));
}

}  // namespace training
}  // namespace qat
