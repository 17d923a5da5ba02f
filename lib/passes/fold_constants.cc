#include "passes/fold_constants.h"

#include <cstring>
#include <numeric>
#include <optional>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "qat/status_macros.h"
#include "core/onnx_tensor.h"
#include "graph/graph_editor.h"
#include "graph/graph_index.h"
#include "graph/rearrange.h"
#include "passes/prune_unused_initializers.h"
#include "qat/tensor.h"

namespace qat {
namespace passes {
namespace {

const std::set<std::string> kReshapeLike = {"Identity", "Reshape", "Flatten",
                                            "Squeeze", "Unsqueeze"};

// Permutes the axes of a tensor of any element type.
Tensor TransposeTensor(const Tensor& in, const std::vector<int64_t>& perm) {
  const int64_t rank = in.rank();
  std::vector<int64_t> out_shape(rank);
  for (int64_t a = 0; a < rank; ++a) out_shape[a] = in.dim(perm[a]);
  Tensor out(in.dtype(), out_shape);
  std::vector<int64_t> in_strides(rank, 1);
  for (int64_t a = rank - 2; a >= 0; --a) in_strides[a] = in_strides[a + 1] * in.dim(a + 1);
  const size_t elem = DataTypeSize(in.dtype());
  const char* src = static_cast<const char*>(in.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  std::vector<int64_t> index(rank, 0);  // index into out
  for (int64_t i = 0; i < out.num_elements(); ++i) {
    int64_t from = 0;
    for (int64_t a = 0; a < rank; ++a) from += index[a] * in_strides[perm[a]];
    std::memcpy(dst + i * elem, src + from * elem, elem);
    for (int64_t a = rank - 1; a >= 0; --a) {
      if (++index[a] < out_shape[a]) break;
      index[a] = 0;
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<bool> FoldConstantsPass::RunImpl(onnx::ModelProto* model) {
  training::GraphEditor editor(model);
  onnx::GraphProto* g = model->mutable_graph();
  const graph::GraphIndex index(*g);
  // Values this run folded, as the initializers it added; a node folds
  // when its inputs are constants of the graph or folded before it.
  absl::flat_hash_map<std::string, int> folded_here;
  auto constant = [&](const std::string& name) -> const onnx::TensorProto* {
    if (auto it = folded_here.find(name); it != folded_here.end()) {
      return &g->initializer(it->second);
    }
    return index.IsInitializer(name) ? index.ConstantProto(name) : nullptr;
  };
  bool changed = false;
  std::vector<int> kept;  // the nodes that do not fold, in order
  for (int k = 0; k < g->node_size(); ++k) {
    const onnx::NodeProto& node = g->node(k);
    const bool default_domain = node.domain().empty() || node.domain() == "ai.onnx";
    bool all_constant = default_domain && node.output_size() == 1;
    for (const auto& in : node.input()) {
      all_constant = all_constant && (in.empty() || constant(in) != nullptr);
    }
    std::optional<onnx::TensorProto> folded;
    if (all_constant && node.op_type() == "Constant") {
      for (const auto& a : node.attribute()) {
        if (a.name() == "value" && a.type() == onnx::AttributeProto::TENSOR) folded = a.t();
      }
    } else if (all_constant && kReshapeLike.count(node.op_type()) != 0) {
      std::optional<training::ValueShape> shape = editor.ShapeOf(node.output(0));
      if (shape.has_value() && shape->fully_known()) {
        folded = *constant(node.input(0));
        folded->clear_dims();
        for (int64_t d : shape->dims) folded->add_dims(d);
      }
    } else if (all_constant && node.op_type() == "Transpose") {
      QAT_ASSIGN_OR_RETURN(Tensor t, TensorFromProto(*constant(node.input(0))));
      std::vector<int64_t> perm = training::GetAttrInts(node, "perm");
      if (perm.empty()) {
        perm.resize(static_cast<size_t>(t.rank()));
        std::iota(perm.rbegin(), perm.rend(), 0);
      }
      folded = TensorToProto(TransposeTensor(t, perm), node.output(0));
    }
    if (!folded.has_value()) {
      kept.push_back(k);
      continue;
    }
    folded->set_name(node.output(0));
    folded_here[node.output(0)] = g->initializer_size();
    *g->add_initializer() = *folded;
    changed = true;
  }
  graph::Rearrange(g->mutable_node(), kept);
  if (changed) PruneUnusedInitializers(g);
  return changed;
}

}  // namespace passes
}  // namespace qat
