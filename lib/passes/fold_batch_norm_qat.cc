#include "passes/fold_batch_norm_qat.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "core/onnx_tensor.h"
#include "graph/graph_editor.h"
#include "graph/graph_index.h"
#include "graph/rearrange.h"
#include "qat/status_macros.h"

namespace qat {
namespace passes {
namespace {

using training::AttrInt;
using training::GetAttrFloat;
using training::GetAttrInt;
using training::GraphEditor;
using training::IsDefaultOp;

int64_t ImportedOpset(const onnx::ModelProto& model) {
  for (const auto& o : model.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") return o.version();
  }
  return 0;
}

bool InTrainingMode(const onnx::NodeProto& bn, int64_t opset) {
  if (!IsDefaultOp(bn, "BatchNormalization")) return false;
  if (opset >= 14) return GetAttrInt(bn, "training_mode", 0) != 0;
  if (GetAttrInt(bn, "is_test", 1) == 0) return true;
  for (int i = 1; i < bn.output_size(); ++i) {
    if (!bn.output(i).empty()) return true;
  }
  return false;
}

// A float initializer with exactly `count` values (any shape), or nullptr.
const onnx::TensorProto* FloatParam(const graph::GraphIndex& index, const std::string& name,
                                    int64_t count) {
  if (name.empty() || index.IsGraphInput(name)) return nullptr;
  const onnx::TensorProto* t = index.FindInitializer(name);
  if (t == nullptr || t->data_type() != onnx::TensorProto::FLOAT) return nullptr;
  int64_t n = 1;
  for (int64_t d : t->dims()) n *= d;
  return n == count ? t : nullptr;
}

std::vector<float> Values(const onnx::TensorProto& t) {
  absl::StatusOr<Tensor> v = TensorFromProto(t);
  if (!v.ok()) return {};
  return std::vector<float>(v->values<float>().begin(), v->values<float>().end());
}

// One fold: the nodes and values involved.
struct Fold {
  int bn = -1, conv = -1, fake_quant = -1;
  int64_t channels = 0, rank = 0;
};

// The fold for training-mode BatchNormalization `k`, or a Fold with bn -1.
Fold FindFold(const onnx::GraphProto& graph, const graph::GraphIndex& index, int k) {
  const onnx::NodeProto& bn = graph.node(k);
  Fold none;
  if (bn.input_size() < 5) return none;
  const std::string& t = bn.input(0);
  const int c = index.Producer(t);
  if (c < 0 || index.NumUses(t) != 1 || index.IsGraphOutput(t)) return none;
  const onnx::NodeProto& conv = graph.node(c);
  if (!IsDefaultOp(conv, "Conv") || conv.input_size() < 2 || conv.output_size() != 1) {
    return none;
  }
  const int q = index.Producer(conv.input(1));
  if (q < 0 || index.NumUses(conv.input(1)) != 1 || index.IsGraphOutput(conv.input(1))) {
    return none;
  }
  const onnx::NodeProto& fq = graph.node(q);
  if (fq.op_type() != "FakeQuant" || fq.input_size() < 3 ||
      GetAttrInt(fq, "axis", 0) != 0 || GetAttrInt(fq, "block_size", 0) != 0) {
    return none;
  }
  const onnx::TensorProto* w = index.FindInitializer(fq.input(0));
  if (w == nullptr || index.IsGraphInput(fq.input(0)) ||
      w->data_type() != onnx::TensorProto::FLOAT || w->dims_size() < 3 ||
      index.NumUses(fq.input(0)) != 1) {
    return none;
  }
  const int64_t m = w->dims(0);
  for (int i = 1; i <= 4; ++i) {
    if (FloatParam(index, bn.input(i), m) == nullptr) return none;
  }
  if (conv.input_size() > 2 && !conv.input(2).empty() &&
      FloatParam(index, conv.input(2), m) == nullptr) {
    return none;
  }
  const onnx::TensorProto* scale = FloatParam(index, fq.input(1), m);
  if (scale == nullptr) scale = FloatParam(index, fq.input(1), 1);
  if (scale == nullptr) return none;
  return Fold{k, c, q, m, w->dims_size()};
}

// The FakeQuant scale for the folded weight: s·|f| per channel, s·max|f|
// per tensor (an unusable factor keeps s).
void RescaleWeightScale(onnx::TensorProto* scale, const std::vector<double>& factor) {
  std::vector<float> s = Values(*scale);
  std::vector<int64_t> dims(scale->dims().begin(), scale->dims().end());
  double largest = 0;
  for (double f : factor) largest = std::max(largest, std::abs(f));
  for (size_t c = 0; c < s.size(); ++c) {
    const double f = s.size() == 1 ? largest : std::abs(factor[c]);
    const float scaled = static_cast<float>(s[c] * f);
    if (std::isfinite(scaled) && scaled > 0) s[c] = scaled;
  }
  const std::string name = scale->name();
  *scale = training::MakeFloatTensor(name, dims, s);
}

// A shape constant [d0, d1, ...] of `rank` with `channels` on `axis`.
std::vector<int64_t> ChannelShape(int64_t rank, int axis, int64_t channels) {
  std::vector<int64_t> dims(static_cast<size_t>(rank), 1);
  dims[axis] = channels;
  return dims;
}

}  // namespace

bool HasTrainingBatchNorm(const onnx::ModelProto& model) {
  const int64_t opset = ImportedOpset(model);
  return std::any_of(model.graph().node().begin(), model.graph().node().end(),
                     [&](const onnx::NodeProto& n) { return InTrainingMode(n, opset); });
}

void AddRunningStatisticOutputs(onnx::ModelProto* model) {
  onnx::GraphProto* graph = model->mutable_graph();
  const graph::GraphIndex index(*graph);
  std::set<std::string> listed;
  for (const auto& o : graph->output()) listed.insert(o.name());
  std::vector<std::pair<std::string, const onnx::TensorProto*>> found;
  for (const auto& n : graph->node()) {
    for (const auto& out : n.output()) {
      if (!absl::EndsWith(out, kRunningStatSuffix) || listed.count(out) != 0) continue;
      const std::string stat = out.substr(0, out.size() - (sizeof(kRunningStatSuffix) - 1));
      if (const onnx::TensorProto* t = index.FindInitializer(stat); t != nullptr) {
        found.emplace_back(out, t);
        listed.insert(out);
      }
    }
  }
  for (const auto& [name, t] : found) {
    onnx::ValueInfoProto* v = graph->add_output();
    v->set_name(name);
    auto* type = v->mutable_type()->mutable_tensor_type();
    type->set_elem_type(t->data_type());
    auto* shape = type->mutable_shape();
    for (int64_t d : t->dims()) shape->add_dim()->set_dim_value(d);
  }
}

absl::StatusOr<bool> FoldBatchNormQatPass::RunImpl(onnx::ModelProto* model) {
  const int64_t opset = ImportedOpset(*model);
  GraphEditor g(model);
  onnx::GraphProto* graph = &g.graph();
  bool changed = false;
  std::vector<int> removed;
  {
    const graph::GraphIndex index(*graph);
    const int original = graph->node_size();
    for (int k = 0; k < original; ++k) {
      if (!InTrainingMode(graph->node(k), opset)) continue;
      const Fold fold = FindFold(*graph, index, k);
      if (fold.bn < 0) continue;
      changed = true;
      // Copies: the editor appends nodes, which may move the graph's nodes.
      const onnx::NodeProto bn = graph->node(fold.bn);
      const onnx::NodeProto conv = graph->node(fold.conv);
      const std::string w = graph->node(fold.fake_quant).input(0);
      const std::string scale = graph->node(fold.fake_quant).input(1);
      const bool has_bias = conv.input_size() > 2 && !conv.input(2).empty();
      const float epsilon = GetAttrFloat(bn, "epsilon", 1e-5f);
      const std::string prefix = absl::StrCat(kBatchNormFoldPrefix, bn.name().empty() ? bn.output(0) : bn.name(), "/");
      // f = γ / sqrt(v + ε), from the current γ and running variance.
      const std::vector<float> gamma = Values(*index.FindInitializer(bn.input(1)));
      const std::vector<float> var = Values(*index.FindInitializer(bn.input(4)));
      std::vector<double> factor(gamma.size());
      for (size_t c = 0; c < gamma.size(); ++c) {
        factor[c] = gamma[c] / std::sqrt(static_cast<double>(var[c]) + epsilon);
      }
      for (auto& t : *graph->mutable_initializer()) {
        if (t.name() == scale) RescaleWeightScale(&t, factor);
      }
      auto named = [&](const std::string& op, std::vector<std::string> inputs,
                       const std::string& what) {
        const std::string out = g.FreshName(prefix + what);
        g.AddNode(op, "", std::move(inputs), {out}).set_name(out);
        return out;
      };
      const std::string eps = g.ConstantFloat(epsilon, prefix + "epsilon");
      const std::string sd = named("Sqrt", {named("Add", {bn.input(4), eps}, "var_eps")}, "std");
      const std::string f = named("Div", {bn.input(1), sd}, "factor");
      const std::string w_shape =
          g.ConstantInt64s(ChannelShape(fold.rank, 0, fold.channels), prefix + "weight_shape");
      const std::string folded_w =
          named("Mul", {w, named("Reshape", {f, w_shape}, "weight_factor")}, "weight");
      graph->mutable_node(fold.fake_quant)->set_input(0, folded_w);
      onnx::NodeProto* conv_node = graph->mutable_node(fold.conv);
      if (mode_ == BatchNormFoldMode::kEval) {
        // β + (b - μ)·f, or β - μ·f without a bias.
        const std::string bias =
            has_bias ? named("Add",
                             {bn.input(2),
                              named("Mul", {named("Sub", {conv.input(2), bn.input(3)}, "centered"), f},
                                    "shift")},
                             "bias")
                     : named("Sub", {bn.input(2), named("Mul", {bn.input(3), f}, "shift")}, "bias");
        if (conv_node->input_size() > 2) {
          conv_node->set_input(2, bias);
        } else {
          conv_node->add_input(bias);
        }
        conv_node->set_output(0, bn.output(0));
        removed.push_back(fold.bn);
        continue;
      }
      // kTraining: the Conv without its bias, ÷f, + b, then the batch norm.
      if (conv_node->input_size() > 2) conv_node->mutable_input()->DeleteSubrange(2, conv_node->input_size() - 2);
      const std::string y_shape =
          g.ConstantInt64s(ChannelShape(fold.rank, 1, fold.channels), prefix + "output_shape");
      std::string y = named("Div", {conv.output(0), named("Reshape", {f, y_shape}, "output_factor")},
                            "unscaled");
      if (has_bias) {
        y = named("Add", {y, named("Reshape", {conv.input(2), y_shape}, "output_bias")}, "biased");
      }
      graph->mutable_node(fold.bn)->set_input(0, y);
    }
  }
  // The other training-mode nodes: inference mode in the eval model; in
  // the training model, running-statistics outputs with the names the
  // trainer reads.
  std::set<int> gone(removed.begin(), removed.end());
  const graph::GraphIndex index(*graph);
  for (int k = 0; k < graph->node_size(); ++k) {
    onnx::NodeProto* bn = graph->mutable_node(k);
    if (gone.count(k) != 0 || !InTrainingMode(*bn, opset)) continue;
    if (mode_ == BatchNormFoldMode::kEval) {
      for (int i = 1; i < bn->output_size(); ++i) {
        if (!bn->output(i).empty() && (index.NumUses(bn->output(i)) > 0 || index.IsGraphOutput(bn->output(i)))) {
          return absl::InvalidArgumentError(absl::StrCat(
              training::DescribeNode(*bn), " in training mode has its output '", bn->output(i),
              "' read: the eval model cannot put it in inference mode"));
        }
      }
      bn->mutable_output()->DeleteSubrange(1, bn->output_size() - 1);
      auto* attrs = bn->mutable_attribute();
      for (int i = attrs->size() - 1; i >= 0; --i) {
        if (attrs->Get(i).name() == "training_mode" || attrs->Get(i).name() == "is_test") {
          attrs->DeleteSubrange(i, 1);
        }
      }
      changed = true;
      continue;
    }
    if (bn->input_size() < 5) continue;
    while (bn->output_size() < 3) bn->add_output("");
    for (int i = 1; i <= 2; ++i) {
      const std::string& stat = bn->input(i + 2);
      if (index.FindInitializer(stat) == nullptr || index.IsGraphInput(stat)) continue;
      const std::string next = stat + kRunningStatSuffix;
      if (bn->output(i) == next) continue;
      const std::string& named = bn->output(i);
      if (named.empty() || (index.NumUses(named) == 0 && !index.IsGraphOutput(named))) {
        bn->set_output(i, next);
      } else {
        g.AddNode("Identity", "", {bn->output(i)}, {next}).set_name(next);
      }
      changed = true;
    }
  }
  if (!removed.empty()) {
    std::vector<int> kept;
    for (int k = 0; k < graph->node_size(); ++k) {
      if (gone.count(k) == 0) kept.push_back(k);
    }
    graph::Rearrange(graph->mutable_node(), kept);
  }
  if (changed) QAT_RETURN_IF_ERROR(training::TopologicalSort(graph));
  return changed;
}

}  // namespace passes
}  // namespace qat
