// Gradient rules for the loss ops.
//
// SoftmaxCrossEntropyLoss(scores [N, C, d...], labels [N, d...], weights [C])
// and NegativeLogLikelihoodLoss(log_probs, labels, weights) weigh each sample
// i by w_i = weights[label_i] (1 without weights), 0 where label_i equals
// ignore_index.  With reduction "mean" the sum is divided by sum(w_i); with
// "sum" it is not; with "none" the upstream gradient is per sample.
//   d scores    = (softmax(scores) - onehot(labels)) * w_i * g_i
//   d log_probs = -onehot(labels) * w_i * g_i
// where g_i is the upstream gradient (divided by sum(w) for "mean").  The
// labels and weights have no gradient (gradient_rule_list.h).
#include "absl/strings/str_cat.h"
#include "qat/status_macros.h"
#include "autodiff/gradient_rules.h"

namespace qat {
namespace training {
namespace {

struct LossTerms {
  std::string onehot;     // float [N, C, d...]
  std::string per_class;  // float [N, 1, d...]: w_i * g_i (normalized)
};

absl::StatusOr<LossTerms> BuildLossTerms(GradContext& ctx) {
  QAT_ASSIGN_OR_RETURN(ValueShape scores, ctx.Shape(ctx.input(0)));
  if (scores.rank() < 2 || scores.dims[1] < 0) {
    return ctx.Unsupported("a loss over scores without a static class axis");
  }
  const int64_t classes = scores.dims[1];
  GraphEditor& g = ctx.g();
  const std::string& labels = ctx.input(1);

  // Valid samples, and labels made safe to index with.
  std::string valid;
  std::string safe = labels;
  const onnx::NodeProto& node = ctx.node();
  bool has_ignore = false;
  for (const auto& a : node.attribute()) has_ignore |= a.name() == "ignore_index";
  if (has_ignore) {
    // Constants of shape [1] broadcast against the labels.
    const std::string ignore = g.ConstantInt64s(
        {GetAttrInt(node, "ignore_index", 0)}, ctx.Hint("ignore"));
    const std::string labels64 = g.Add("Cast", {labels}, ctx.Hint("labels64"),
                                       {AttrInt("to", onnx::TensorProto::INT64)});
    valid = g.Add("Not", {g.Add("Equal", {labels64, ignore}, ctx.Hint("ignored"))},
                  ctx.Hint("valid"));
    safe = g.Add("Where",
                 {valid, labels64, g.ConstantInt64s({0}, ctx.Hint("zero_label"))},
                 ctx.Hint("safe_labels"));
  }

  // One-hot over the class axis: labels[N, 1, d...] == [0..C-1] shaped
  // [1, C, 1...].
  std::vector<int64_t> class_dims(static_cast<size_t>(scores.rank()), 1);
  class_dims[1] = classes;
  std::vector<int64_t> class_ids(static_cast<size_t>(classes));
  for (int64_t c = 0; c < classes; ++c) class_ids[c] = c;
  onnx::TensorProto ids;
  ids.set_name(ctx.Hint("classes"));
  ids.set_data_type(onnx::TensorProto::INT64);
  for (int64_t d : class_dims) ids.add_dims(d);
  for (int64_t c : class_ids) ids.add_int64_data(c);
  const std::string labels_c = g.Unsqueeze(
      g.Add("Cast", {safe}, ctx.Hint("labels_i64"),
            {AttrInt("to", onnx::TensorProto::INT64)}),
      {1}, ctx.Hint("labels_c"));
  LossTerms t;
  t.onehot = g.Add("Cast", {g.Add("Equal", {labels_c, g.Initializer(ids)}, ctx.Hint("hot"))},
                   ctx.Hint("onehot"), {AttrInt("to", onnx::TensorProto::FLOAT)});

  // Per-sample weights w_i [N, d...].
  std::string w;
  if (ctx.num_inputs() > 2 && !ctx.input(2).empty()) {
    w = g.Add("Gather", {ctx.input(2), safe}, ctx.Hint("w"), {AttrInt("axis", 0)});
  }
  if (!valid.empty()) {
    const std::string vf = g.Add("Cast", {valid}, ctx.Hint("valid_f"),
                                 {AttrInt("to", onnx::TensorProto::FLOAT)});
    w = w.empty() ? vf : g.Add("Mul", {w, vf}, ctx.Hint("w_valid"));
  }
  const std::string reduction = GetAttrString(node, "reduction", "mean");
  std::string scale = ctx.output_grad(0);  // scalar, or [N, d...] for "none"
  if (reduction == "mean") {
    std::string denom;
    if (w.empty()) {
      // Number of samples: the element count of the labels.
      const std::string shape = g.Add("Shape", {labels}, ctx.Hint("lshape"));
      denom = g.Add("ReduceProd", {g.Add("Cast", {shape}, ctx.Hint("lshape_f"),
                                         {AttrInt("to", onnx::TensorProto::FLOAT)})},
                    ctx.Hint("count"), {AttrInt("keepdims", 0)});
    } else {
      denom = g.ReduceSum(w, {}, false, ctx.Hint("wsum"));
    }
    scale = g.Add("Div", {scale, denom}, ctx.Hint("scale"));
  } else if (reduction != "sum" && reduction != "none") {
    return ctx.Unsupported(absl::StrCat("reduction '", reduction, "'"));
  }
  std::string per = w.empty() ? scale : g.Add("Mul", {w, scale}, ctx.Hint("per"));
  if (w.empty() && reduction != "none") {
    t.per_class = per;  // a scalar broadcasts over everything
  } else {
    t.per_class = g.Unsqueeze(per, {1}, ctx.Hint("per_c"));
  }
  return t;
}

}  // namespace

absl::Status GradSoftmaxCrossEntropyLoss(GradContext& ctx) {
  if (ctx.output_grad(0).empty()) {
    return ctx.Unsupported("a gradient through its log_prob output");
  }
  QAT_ASSIGN_OR_RETURN(LossTerms t, BuildLossTerms(ctx));
  GraphEditor& g = ctx.g();
  std::string p;
  if (!ctx.output(1).empty()) {
    p = g.Add("Exp", {ctx.output(1)}, ctx.Hint("p"));
  } else {
    p = g.Add("Softmax", {ctx.input(0)}, ctx.Hint("p"), {AttrInt("axis", 1)});
  }
  const std::string diff = g.Add("Sub", {p, t.onehot}, ctx.Hint("diff"));
  ctx.SetInputGrad(0, g.Add("Mul", {diff, t.per_class}, ctx.Hint("scores")));
  return absl::OkStatus();
}

absl::Status GradNegativeLogLikelihoodLoss(GradContext& ctx) {
  QAT_ASSIGN_OR_RETURN(LossTerms t, BuildLossTerms(ctx));
  GraphEditor& g = ctx.g();
  const std::string neg = g.Add("Neg", {t.onehot}, ctx.Hint("neg"));
  ctx.SetInputGrad(0, g.Add("Mul", {neg, t.per_class}, ctx.Hint("log_probs")));
  return absl::OkStatus();
}

}  // namespace training
}  // namespace qat
