#include "passes/add_loss.h"

#include "absl/strings/str_cat.h"
#include "graph/graph_editor.h"
#include "qat/status_macros.h"

#include <cmath>
#include <optional>
#include <string>
#include <vector>

namespace qat {

absl::StatusOr<LossKind> ParseLossKind(absl::string_view name) {
  for (LossKind k : {LossKind::kCrossEntropy, LossKind::kMse,
                     LossKind::kBceWithLogits, LossKind::kL1}) {
    if (name == LossKindName(k)) return k;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown loss '", name, "'; expected cross-entropy, mse, "
      "bce-with-logits or l1"));
}

const char* LossKindName(LossKind kind) {
  switch (kind) {
    case LossKind::kCrossEntropy: return "cross-entropy";
    case LossKind::kMse: return "mse";
    case LossKind::kBceWithLogits: return "bce-with-logits";
    case LossKind::kL1: return "l1";
  }
  return "unknown";
}

absl::StatusOr<DistillKind> ParseDistillKind(absl::string_view name) {
  for (DistillKind k : {DistillKind::kMse, DistillKind::kKl, DistillKind::kCosine}) {
    if (name == DistillKindName(k)) return k;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown distillation loss '", name, "'; expected mse, kl or cosine"));
}

const char* DistillKindName(DistillKind kind) {
  switch (kind) {
    case DistillKind::kMse: return "mse";
    case DistillKind::kKl: return "kl";
    case DistillKind::kCosine: return "cosine";
  }
  return "unknown";
}

namespace training {
namespace {

// Sum or mean over every element, to a scalar.
std::string Reduce(GraphEditor& g, const std::string& x, LossReduction r) {
  return r == LossReduction::kSum ? g.ReduceSum(x, {}, false, "loss_sum")
                                  : g.ReduceMean(x, {}, false, "loss_mean");
}

// The labelled loss on `y`: adds the labels input and returns the loss value.
absl::StatusOr<std::string> LabelledLoss(GraphEditor& g, const LossOptions& options_,
                                         const std::string& y, const ValueShape* ys) {
  if (ys->elem_type != onnx::TensorProto::FLOAT) {
    return absl::InvalidArgumentError(
        absl::StrCat("the loss input '", y, "' is not float"));
  }
  const bool ce = options_.kind == LossKind::kCrossEntropy;
  if (!ce && (options_.ignore_index.has_value() ||
              !options_.class_weights.empty())) {
    return absl::InvalidArgumentError(
        "ignore_index and class weights apply to cross-entropy only");
  }
  // labels: int64 [N, d...] for cross-entropy, else shaped like y.
  ValueShape labels = *ys;
  if (ce) {
    if (!ys->rank_known || ys->rank() < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cross-entropy needs logits of rank >= 2 ([N, C, ...]), but '", y,
          "' has ", ys->rank_known ? absl::StrCat("rank ", ys->rank())
                                   : std::string("an unknown rank")));
    }
    labels.elem_type = onnx::TensorProto::INT64;
    labels.dims.erase(labels.dims.begin() + 1);
  }
  g.AddInput(kLabelsInput, labels);

  std::string loss;
  const LossReduction r = options_.reduction;
  switch (options_.kind) {
    case LossKind::kCrossEntropy: {
      std::vector<std::string> inputs = {y, kLabelsInput};
      if (!options_.class_weights.empty()) {
        if (ys->dims[1] >= 0 &&
            static_cast<int64_t>(options_.class_weights.size()) != ys->dims[1]) {
          return absl::InvalidArgumentError(absl::StrCat(
              "cross-entropy has ", options_.class_weights.size(),
              " class weights for ", ys->dims[1], " classes"));
        }
        inputs.push_back(g.Initializer(MakeFloatTensor(
            "class_weights",
            {static_cast<int64_t>(options_.class_weights.size())},
            options_.class_weights)));
      }
      std::vector<onnx::AttributeProto> attrs = {AttrString(
          "reduction", r == LossReduction::kSum ? "sum" : "mean")};
      if (options_.ignore_index.has_value()) {
        attrs.push_back(AttrInt("ignore_index", *options_.ignore_index));
      }
      loss = g.Add("SoftmaxCrossEntropyLoss", inputs, "loss_ce", attrs);
      break;
    }
    case LossKind::kMse: {
      const std::string d = g.Add("Sub", {y, kLabelsInput}, "loss_diff");
      loss = Reduce(g, g.Add("Mul", {d, d}, "loss_sq"), r);
      break;
    }
    case LossKind::kL1: {
      const std::string d = g.Add("Sub", {y, kLabelsInput}, "loss_diff");
      loss = Reduce(g, g.Add("Abs", {d}, "loss_abs"), r);
      break;
    }
    case LossKind::kBceWithLogits: {
      // max(y, 0) - y * t + log(1 + exp(-|y|)): finite for any y.
      const std::string pos = g.Add("Relu", {y}, "loss_pos");
      const std::string yt = g.Add("Mul", {y, kLabelsInput}, "loss_yt");
      const std::string e = g.Add(
          "Exp", {g.Add("Neg", {g.Add("Abs", {y}, "loss_abs")}, "loss_neg")},
          "loss_exp");
      const std::string sp = g.Add(
          "Log", {g.Add("Add", {g.ConstantFloat(1.0f, "loss_one"), e}, "loss_1pe")},
          "loss_log");
      const std::string elem =
          g.Add("Add", {g.Add("Sub", {pos, yt}, "loss_lin"), sp}, "loss_elem");
      loss = Reduce(g, elem, r);
      break;
    }
  }
  return loss;
}

// The value `name` exists in the graph (a node output, an input or an initializer).
bool Exists(const onnx::GraphProto& graph, const std::string& name) {
  for (const auto& v : graph.input()) {
    if (v.name() == name) return true;
  }
  for (const auto& n : graph.node()) {
    for (const auto& o : n.output()) {
      if (o == name) return true;
    }
  }
  return false;
}

// One distillation term, a scalar.
absl::StatusOr<std::string> DistillLoss(GraphEditor& g, const DistillTerm& term) {
  const std::string& s = term.student;
  const std::string t = absl::StrCat(kTeacherPrefix, term.teacher.empty() ? s : term.teacher);
  if (!Exists(g.graph(), s)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the distillation tensor '", s, "' is not a value of the student"));
  }
  if (!Exists(g.graph(), t)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the distillation tensor '", t.substr(sizeof(kTeacherPrefix) - 1),
        "' is not a value of the teacher"));
  }
  if (std::optional<ValueShape> shape = g.ShapeOf(s);
      shape.has_value() && shape->elem_type != onnx::TensorProto::FLOAT) {
    return absl::InvalidArgumentError(
        absl::StrCat("the distillation tensor '", s, "' is not float"));
  }
  switch (term.kind) {
    case DistillKind::kMse: {
      const std::string d = g.Add("Sub", {s, t}, "distill_diff");
      return g.ReduceMean(g.Add("Mul", {d, d}, "distill_sq"), {}, false, "distill_mse");
    }
    case DistillKind::kKl: {
      if (!(term.temperature > 0.0f) || !std::isfinite(term.temperature)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the KL temperature must be > 0 and finite, got ", term.temperature));
      }
      const std::string temp = g.ConstantFloat(term.temperature, "distill_t");
      const std::vector<onnx::AttributeProto> last = {AttrInt("axis", -1)};
      const std::string ts = g.Add("Div", {t, temp}, "distill_ts");
      const std::string p = g.Add("Softmax", {ts}, "distill_p", last);
      const std::string log_p = g.Add("LogSoftmax", {ts}, "distill_logp", last);
      const std::string log_q =
          g.Add("LogSoftmax", {g.Add("Div", {s, temp}, "distill_ss")}, "distill_logq", last);
      const std::string elem =
          g.Add("Mul", {p, g.Add("Sub", {log_p, log_q}, "distill_lr")}, "distill_kl_elem");
      const std::string kl = g.ReduceMean(g.ReduceSum(elem, {-1}, false, "distill_kl_row"), {},
                                          false, "distill_kl_mean");
      return g.Add("Mul",
                   {kl, g.ConstantFloat(term.temperature * term.temperature, "distill_t2")},
                   "distill_kl");
    }
    case DistillKind::kCosine: {
      const std::vector<onnx::AttributeProto> rows = {AttrInt("axis", 1)};
      const std::string fs = g.Add("Flatten", {s}, "distill_fs", rows);
      const std::string ft = g.Add("Flatten", {t}, "distill_ft", rows);
      auto dot = [&](const std::string& a, const std::string& b, const char* hint) {
        return g.ReduceSum(g.Add("Mul", {a, b}, hint), {1}, false, hint);
      };
      const std::string norms = g.Add(
          "Sqrt",
          {g.Add("Add",
                 {g.Add("Mul", {dot(fs, fs, "distill_ss2"), dot(ft, ft, "distill_tt2")},
                        "distill_nn"),
                  g.ConstantFloat(1e-12f, "distill_eps")},
                 "distill_nne")},
          "distill_norms");
      const std::string cos = g.Add("Div", {dot(fs, ft, "distill_st"), norms}, "distill_cos");
      return g.Add("Sub",
                   {g.ConstantFloat(1.0f, "distill_one"),
                    g.ReduceMean(cos, {}, false, "distill_cos_mean")},
                   "distill_cosine");
    }
  }
  return absl::InternalError("unknown distillation kind");
}

}  // namespace

absl::StatusOr<bool> AddLossPass::RunImpl(onnx::ModelProto* model) {
  GraphEditor g(model);
  onnx::GraphProto& graph = g.graph();
  if (graph.output_size() == 0) {
    return absl::InvalidArgumentError("the model has no outputs");
  }
  // Once (FreshName reserves the names for the loss pass's own use).
  auto check_reserved = [&]() -> absl::Status {
    for (const char* reserved : {kLabelsInput, kLossOutput}) {
      if (g.ShapeOf(reserved).has_value() || g.FreshName(reserved) != reserved) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the model already has a value named '", reserved, "'"));
      }
    }
    return absl::OkStatus();
  };
  auto labelled = [&]() -> absl::StatusOr<std::string> {
    std::string y = options_.output.empty() ? graph.output(0).name() : options_.output;
    std::optional<ValueShape> ys;
    for (const auto& o : graph.output()) {
      if (o.name() == y) ys = g.ShapeOf(y);
    }
    if (!ys.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the loss input '", y, "' is not an output of the model"));
    }
    if (!with_teacher_) QAT_RETURN_IF_ERROR(check_reserved());
    return LabelledLoss(g, options_, y, &*ys);
  };
  std::string loss;
  if (!with_teacher_) {
    QAT_ASSIGN_OR_RETURN(loss, labelled());
  } else {
    QAT_RETURN_IF_ERROR(check_reserved());
    const DistillOptions& d = options_.distill;
    std::vector<DistillTerm> terms = d.terms;
    if (terms.empty()) {
      for (const auto& o : graph.output()) terms.push_back({o.name()});
    }
    auto add = [&](const std::string& value, float weight) {
      std::string v = value;
      if (weight != 1.0f) {
        v = g.Add("Mul", {v, g.ConstantFloat(weight, "distill_w")}, "distill_weighted");
      }
      loss = loss.empty() ? v : g.Add("Add", {loss, v}, "distill_total");
    };
    for (const DistillTerm& term : terms) {
      if (!(term.weight >= 0.0f) || !std::isfinite(term.weight)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the distillation weight of '", term.student, "' must be >= 0, got ", term.weight));
      }
      QAT_ASSIGN_OR_RETURN(const std::string term_loss, DistillLoss(g, term));
      add(term_loss, term.weight);
    }
    if (!(d.label_weight >= 0.0f) || !std::isfinite(d.label_weight)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the label weight must be >= 0, got ", d.label_weight));
    }
    if (d.label_weight > 0.0f) {
      QAT_ASSIGN_OR_RETURN(const std::string l, labelled());
      add(l, d.label_weight);
    }
  }
  // Rename the loss value to "loss" and list it first among the outputs.
  // Its producer is the last node this pass appended: look from the end.
  for (int k = graph.node_size() - 1; k >= 0; --k) {
    bool found = false;
    for (auto& o : *graph.mutable_node(k)->mutable_output()) {
      if (o == loss) {
        o = kLossOutput;
        found = true;
      }
    }
    if (found) break;
  }
  ValueShape scalar;
  scalar.elem_type = onnx::TensorProto::FLOAT;
  scalar.rank_known = true;
  onnx::GraphProto outputs;
  *outputs.mutable_output() = graph.output();
  g.ClearOutputs();
  g.AddOutput(kLossOutput, scalar);
  for (const auto& o : outputs.output()) *graph.add_output() = o;
  return true;
}

}  // namespace training
}  // namespace qat
