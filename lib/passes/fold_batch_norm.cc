#include "passes/fold_batch_norm.h"

#include <cmath>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "graph/graph_editor.h"
#include "graph/graph_index.h"
#include "graph/rearrange.h"
#include "passes/prune_unused_initializers.h"

namespace qat {
namespace passes {
namespace {

using training::GetAttrFloat;
using training::GetAttrInt;
using training::GraphEditor;

// A float32 constant's values, or an empty vector when `name` is not one.
std::vector<float> FloatConstant(const graph::GraphIndex& index, const std::string& name,
                                 std::vector<int64_t>* dims = nullptr) {
  if (name.empty() || !index.IsConstant(name)) return {};
  absl::StatusOr<Tensor> t = index.ConstantValue(name);
  if (!t.ok() || t->dtype() != DataType::kFloat32) return {};
  if (dims != nullptr) *dims = t->shape();
  return std::vector<float>(t->values<float>().begin(), t->values<float>().end());
}

// Per output channel: the factor f = scale / sqrt(var + eps) and the shift
// bias - mean * f, in double.
struct Affine {
  std::vector<double> factor, shift;
};

// The BatchNormalization's affine map, or nullopt when it cannot fold.
std::optional<Affine> InferenceAffine(const graph::GraphIndex& index,
                                      const onnx::NodeProto& bn) {
  // training_mode (opset 14+), or is_test = 0 (opsets 1 to 6): batch statistics.
  if (bn.input_size() < 5 || GetAttrInt(bn, "training_mode", 0) != 0 ||
      GetAttrInt(bn, "is_test", 1) == 0) {
    return std::nullopt;
  }
  // Before opset 14, naming the running-statistics outputs is what puts the
  // node in training mode, read or not.
  for (int i = 1; i < bn.output_size(); ++i) {
    if (!bn.output(i).empty()) return std::nullopt;
  }
  const std::vector<float> scale = FloatConstant(index, bn.input(1));
  const std::vector<float> bias = FloatConstant(index, bn.input(2));
  const std::vector<float> mean = FloatConstant(index, bn.input(3));
  const std::vector<float> var = FloatConstant(index, bn.input(4));
  const size_t m = scale.size();
  if (m == 0 || bias.size() != m || mean.size() != m || var.size() != m) return std::nullopt;
  const double eps = GetAttrFloat(bn, "epsilon", 1e-5f);
  Affine a;
  for (size_t c = 0; c < m; ++c) {
    const double denominator = std::sqrt(static_cast<double>(var[c]) + eps);
    if (!(denominator > 0) || !std::isfinite(denominator)) return std::nullopt;
    a.factor.push_back(scale[c] / denominator);
    a.shift.push_back(bias[c] - mean[c] * a.factor.back());
  }
  return a;
}

// The output channel of each weight element for the layer, or an empty
// vector when the layer's weight does not fit M channels.
std::vector<int64_t> OutputChannels(const onnx::NodeProto& layer,
                                    const std::vector<int64_t>& dims, int64_t m) {
  int64_t count = 1;
  for (int64_t d : dims) count *= d;
  std::vector<int64_t> channel(static_cast<size_t>(count));
  if (training::IsDefaultOp(layer, "Conv")) {  // W [M, C/g, k...]
    if (dims.size() < 3 || dims[0] != m) return {};
    const int64_t per = count / m;
    for (int64_t i = 0; i < count; ++i) channel[i] = i / per;
  } else if (training::IsDefaultOp(layer, "ConvTranspose")) {  // W [C, M/g, k...]
    const int64_t groups = GetAttrInt(layer, "group", 1);
    if (dims.size() < 3 || groups < 1 || dims[0] % groups != 0 || dims[1] * groups != m) {
      return {};
    }
    const int64_t inner = count / (dims[0] * dims[1]);
    const int64_t per_group = dims[0] / groups;
    for (int64_t i = 0; i < count; ++i) {
      const int64_t c = i / (dims[1] * inner), j = (i / inner) % dims[1];
      channel[i] = (c / per_group) * dims[1] + j;
    }
  } else {  // Gemm: B [K, M], or [M, K] with transB
    if (dims.size() != 2) return {};
    const bool trans_b = GetAttrInt(layer, "transB", 0) != 0;
    if ((trans_b ? dims[0] : dims[1]) != m) return {};
    for (int64_t i = 0; i < count; ++i) channel[i] = trans_b ? i / dims[1] : i % dims[1];
  }
  return channel;
}

}  // namespace

absl::StatusOr<bool> FoldBatchNormPass::RunImpl(onnx::ModelProto* model) {
  GraphEditor g(model);
  onnx::GraphProto* graph = &g.graph();
  const graph::GraphIndex index(*graph);
  std::set<int> removed;
  for (int k = 0; k < graph->node_size(); ++k) {
    const onnx::NodeProto& bn = graph->node(k);
    if (!training::IsDefaultOp(bn, "BatchNormalization") || bn.input_size() < 1) continue;
    const std::string& t = bn.input(0);
    const int p = index.Producer(t);
    if (p < 0 || index.NumUses(t) != 1 || index.IsGraphOutput(t)) continue;
    onnx::NodeProto* layer = graph->mutable_node(p);
    const bool gemm = training::IsDefaultOp(*layer, "Gemm");
    if (!(gemm || training::IsDefaultOp(*layer, "Conv") || training::IsDefaultOp(*layer, "ConvTranspose")) ||
        layer->input_size() < 2 || layer->output_size() != 1) {
      continue;
    }
    const std::optional<Affine> affine = InferenceAffine(index, bn);
    if (!affine.has_value()) continue;
    const int64_t m = static_cast<int64_t>(affine->factor.size());
    std::vector<int64_t> w_dims;
    std::vector<float> w = FloatConstant(index, layer->input(1), &w_dims);
    const std::vector<int64_t> channel = OutputChannels(*layer, w_dims, m);
    if (w.empty() || channel.size() != w.size()) continue;
    // The layer's bias per output channel (Gemm: beta * C, for C of shape
    // [], [1], [M] or [1, M]).
    std::vector<double> b(static_cast<size_t>(m), 0.0);
    if (layer->input_size() > 2 && !layer->input(2).empty()) {
      std::vector<int64_t> b_dims;
      const std::vector<float> given = FloatConstant(index, layer->input(2), &b_dims);
      const double beta = gemm ? GetAttrFloat(*layer, "beta", 1.0f) : 1.0;
      const bool per_channel = static_cast<int64_t>(given.size()) == m &&
                               (b_dims.size() == 1 || (gemm && b_dims.size() == 2 && b_dims[0] == 1));
      const bool scalar = gemm && given.size() == 1 && b_dims.size() <= 1;
      if (!per_channel && !scalar) continue;
      for (int64_t c = 0; c < m; ++c) b[c] = beta * given[per_channel ? c : 0];
    }
    std::vector<float> folded_w(w.size()), folded_b(static_cast<size_t>(m));
    for (size_t i = 0; i < w.size(); ++i) {
      folded_w[i] = static_cast<float>(w[i] * affine->factor[channel[i]]);
    }
    for (int64_t c = 0; c < m; ++c) {
      folded_b[c] = static_cast<float>(b[c] * affine->factor[c] + affine->shift[c]);
    }
    const std::string w_name = g.Initializer(
        training::MakeFloatTensor(layer->input(1) + "_bn_folded", w_dims, folded_w));
    const std::string b_name =
        g.Initializer(training::MakeFloatTensor(bn.output(0) + "_bias", {m}, folded_b));
    layer->set_input(1, w_name);
    if (layer->input_size() > 2) {
      layer->set_input(2, b_name);
    } else {
      layer->add_input(b_name);
    }
    if (gemm) {  // C now holds beta * C, folded
      auto* attrs = layer->mutable_attribute();
      for (int i = attrs->size() - 1; i >= 0; --i) {
        if (attrs->Get(i).name() == "beta") attrs->DeleteSubrange(i, 1);
      }
      *layer->add_attribute() = training::AttrFloat("beta", 1.0f);
    }
    layer->set_output(0, bn.output(0));
    removed.insert(k);
  }
  if (removed.empty()) return false;
  std::vector<int> kept;
  for (int k = 0; k < graph->node_size(); ++k) {
    if (removed.count(k) == 0) kept.push_back(k);
  }
  graph::Rearrange(graph->mutable_node(), kept);
  PruneUnusedInitializers(graph);
  return true;
}

}  // namespace passes
}  // namespace qat
