#include "passes/fold_constants.h"

#include <cstring>
#include <map>
#include <numeric>
#include <set>

#include "absl/strings/str_cat.h"
#include "qat/status_macros.h"
#include "qat/tensor.h"
#include "graph/graph_editor.h"

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

void PruneUnusedInitializers(onnx::GraphProto* graph) {
  std::set<std::string> used;
  for (const auto& n : graph->node()) used.insert(n.input().begin(), n.input().end());
  for (const auto& o : graph->output()) used.insert(o.name());
  std::set<std::string> removed;
  google::protobuf::RepeatedPtrField<onnx::TensorProto> kept;
  for (const auto& t : graph->initializer()) {
    if (used.count(t.name()) != 0) {
      *kept.Add() = t;
    } else {
      removed.insert(t.name());
    }
  }
  *graph->mutable_initializer() = kept;
  // Older models also list initializers as graph inputs: drop those too.
  google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> inputs;
  for (const auto& in : graph->input()) {
    if (removed.count(in.name()) == 0) *inputs.Add() = in;
  }
  *graph->mutable_input() = inputs;
}

absl::StatusOr<bool> FoldConstantsPass::RunImpl(onnx::ModelProto* model) {
  training::GraphEditor editor(model);
  onnx::GraphProto* g = model->mutable_graph();
  std::map<std::string, int> initializer_index;
  for (int i = 0; i < g->initializer_size(); ++i) initializer_index[g->initializer(i).name()] = i;
  std::set<std::string> graph_inputs;
  for (const auto& in : g->input()) graph_inputs.insert(in.name());
  auto is_constant = [&](const std::string& name) {
    // An initializer that is also a graph input may be overridden at run
    // time, so it is not a constant.
    return name.empty() ||
           (initializer_index.count(name) != 0 && graph_inputs.count(name) == 0);
  };
  bool changed = false;
  google::protobuf::RepeatedPtrField<onnx::NodeProto> kept;
  for (const auto& node : g->node()) {
    const bool default_domain = node.domain().empty() || node.domain() == "ai.onnx";
    bool all_constant = default_domain && node.output_size() == 1;
    for (const auto& in : node.input()) all_constant = all_constant && is_constant(in);
    std::optional<onnx::TensorProto> folded;
    if (all_constant && node.op_type() == "Constant") {
      for (const auto& a : node.attribute()) {
        if (a.name() == "value" && a.type() == onnx::AttributeProto::TENSOR) folded = a.t();
      }
    } else if (all_constant && kReshapeLike.count(node.op_type()) != 0) {
      std::optional<training::ValueShape> shape = editor.ShapeOf(node.output(0));
      if (shape.has_value() && shape->fully_known()) {
        folded = g->initializer(initializer_index.at(node.input(0)));
        folded->clear_dims();
        for (int64_t d : shape->dims) folded->add_dims(d);
      }
    } else if (all_constant && node.op_type() == "Transpose") {
      const auto& src = g->initializer(initializer_index.at(node.input(0)));
      QAT_ASSIGN_OR_RETURN(Tensor t, ParseTensorProto(src.SerializeAsString()));
      std::vector<int64_t> perm = training::GetAttrInts(node, "perm");
      if (perm.empty()) {
        perm.resize(static_cast<size_t>(t.rank()));
        std::iota(perm.rbegin(), perm.rend(), 0);
      }
      QAT_ASSIGN_OR_RETURN(std::string bytes,
                           SerializeTensorProto(TransposeTensor(t, perm), node.output(0)));
      folded.emplace();
      folded->ParseFromString(bytes);
    }
    if (!folded.has_value()) {
      *kept.Add() = node;
      continue;
    }
    folded->set_name(node.output(0));
    initializer_index[node.output(0)] = g->initializer_size();
    *g->add_initializer() = *folded;
    changed = true;
  }
  *g->mutable_node() = kept;
  if (changed) PruneUnusedInitializers(g);
  return changed;
}

}  // namespace passes
}  // namespace qat
