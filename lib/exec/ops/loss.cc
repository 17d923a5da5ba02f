// Losses: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (which is
// LogSoftmax along axis 1 followed by the same negative log-likelihood).
//
// Input [N, C] or [N, C, D1, ...], labels [N] or [N, D1, ...] (int32/int64),
// optional class weights [C].  With w_i = weight[label_i] (1 without
// weights, 0 for ignore_index) and l_i = -w_i * log_prob[i, label_i]:
//   reduction "none": l;  "sum": sum(l);  "mean": sum(l) / sum(w).
#include "exec/ops/op_util.h"
#include "exec/ops/softmax_lane.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

enum class Reduce { kNone, kSum, kMean };

struct LossAttrs {
  Reduce reduction = Reduce::kMean;
  bool has_ignore_index = false;
  int64_t ignore_index = 0;
};

absl::StatusOr<LossAttrs> ReadLossAttrs(const NodeView& node) {
  LossAttrs attrs;
  const std::string reduction = node.GetString("reduction", "mean");
  if (reduction == "none") attrs.reduction = Reduce::kNone;
  else if (reduction == "sum") attrs.reduction = Reduce::kSum;
  else if (reduction != "mean") {
    return absl::InvalidArgumentError(absl::StrCat("unknown reduction '", reduction, "'"));
  }
  attrs.has_ignore_index = node.HasAttr("ignore_index");
  attrs.ignore_index = node.GetInt("ignore_index", 0);
  return attrs;
}

// Computes the loss from log-probabilities `log_prob` laid out like the input.
template <typename T>
absl::Status NllFromLogProb(const LossAttrs& attrs, const T* log_prob,
                            const std::vector<int64_t>& input_shape,
                            const Tensor& labels, const Tensor* weights, Tensor& out) {
  const int64_t batch = input_shape[0], classes = input_shape[1];
  const int64_t inner = Product(input_shape, 2, input_shape.size());
  std::vector<int64_t> label_shape = {batch};
  label_shape.insert(label_shape.end(), input_shape.begin() + 2, input_shape.end());
  if (labels.shape() != label_shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        "labels must have shape ", ShapeToString(label_shape), ", got ",
        ShapeToString(labels.shape())));
  }
  QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> label_values,
                       ReadIndices(labels, "labels"));
  if (weights != nullptr && weights->num_elements() != classes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights have ", weights->num_elements(), " values for ", classes, " classes"));
  }
  std::vector<T> losses(label_values.size());
  double loss_sum = 0, weight_sum = 0;
  for (size_t i = 0; i < label_values.size(); ++i) {
    const int64_t label = label_values[i];
    if (attrs.has_ignore_index && label == attrs.ignore_index) {
      losses[i] = T(0);
      continue;
    }
    if (label < 0 || label >= classes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "label ", label, " is out of range for ", classes, " classes"));
    }
    const T w = weights != nullptr ? weights->data<T>()[label] : T(1);
    const int64_t n = static_cast<int64_t>(i) / inner, d = static_cast<int64_t>(i) % inner;
    losses[i] = -w * log_prob[(n * classes + label) * inner + d];
    loss_sum += losses[i];
    weight_sum += w;
  }
  if (attrs.reduction == Reduce::kNone) {
    out = Tensor::FromValues<T>(label_shape, losses);
  } else {
    const double value = attrs.reduction == Reduce::kSum ? loss_sum : loss_sum / weight_sum;
    out = Tensor::Scalar<T>(static_cast<T>(value));
  }
  return absl::OkStatus();
}

// Checks the common inputs; returns the weights tensor or nullptr.
absl::StatusOr<const Tensor*> CheckLossInputs(const KernelContext& ctx) {
  QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
  QAT_RETURN_IF_ERROR(RequireInput(ctx, 1));
  const Tensor& input = ctx.input(0);
  if (input.rank() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the input must be [N, C, ...], got ", ShapeToString(input.shape())));
  }
  if (!ctx.has_input(2)) return nullptr;
  QAT_RETURN_IF_ERROR(RequireSameType(input, ctx.input(2)));
  return &ctx.input(2);
}

}  // namespace

absl::StatusOr<Kernel> MakeNegativeLogLikelihoodLoss(const NodeView& node) {
  QAT_ASSIGN_OR_RETURN(const LossAttrs attrs, ReadLossAttrs(node));
  return Kernel([attrs](KernelContext& ctx) -> absl::Status {
    QAT_ASSIGN_OR_RETURN(const Tensor* weights, CheckLossInputs(ctx));
    const Tensor& input = ctx.input(0);
    return VisitFloat(input.dtype(), [&](auto tag) {
      using T = decltype(tag);
      return NllFromLogProb<T>(attrs, input.data<T>(), input.shape(), ctx.input(1),
                               weights, ctx.output(0));
    });
  });
}

absl::StatusOr<Kernel> MakeSoftmaxCrossEntropyLoss(const NodeView& node) {
  QAT_ASSIGN_OR_RETURN(const LossAttrs attrs, ReadLossAttrs(node));
  auto log_prob = std::make_shared<Tensor>();  // scratch when not an output
  return Kernel([attrs, log_prob](KernelContext& ctx) -> absl::Status {
    QAT_ASSIGN_OR_RETURN(const Tensor* weights, CheckLossInputs(ctx));
    const Tensor& scores = ctx.input(0);
    Tensor& lp = ctx.has_output(1) ? ctx.output(1) : *log_prob;
    return VisitFloat(scores.dtype(), [&](auto tag) {
      using T = decltype(tag);
      lp.Resize(scores.dtype(), scores.shape());
      const int64_t classes = scores.dim(1);
      const int64_t inner = Product(scores.shape(), 2, scores.shape().size());
      const T* px = scores.data<T>();
      T* py = lp.data<T>();
      if (classes > 0) {
        ForEachRow(ctx.pool, scores.dim(0) * inner, classes, [&](int64_t lane) {
          const int64_t base = (lane / inner) * classes * inner + lane % inner;
          NormalizeLane(px + base, py + base, classes, inner, /*log=*/true);
        });
      }
      return NllFromLogProb<T>(attrs, py, scores.shape(), ctx.input(1), weights,
                               ctx.output(0));
    });
  });
}

}  // namespace exec
}  // namespace qat
