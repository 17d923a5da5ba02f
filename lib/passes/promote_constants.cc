#include "passes/promote_constants.h"

#include <optional>
#include <vector>

#include "core/onnx_tensor.h"
#include "graph/graph_editor.h"
#include "graph/rearrange.h"

namespace qat {
namespace passes {
namespace {

// The float tensor a Constant node holds, or nullopt.
std::optional<onnx::TensorProto> FloatConstant(const onnx::NodeProto& node) {
  for (const auto& a : node.attribute()) {
    if (a.name() == "value" && a.type() == onnx::AttributeProto::TENSOR &&
        a.t().data_type() == onnx::TensorProto::FLOAT) {
      return a.t();
    }
    if (a.name() == "value_float" && a.type() == onnx::AttributeProto::FLOAT) {
      onnx::TensorProto t;
      t.set_data_type(onnx::TensorProto::FLOAT);
      t.add_float_data(a.f());
      return t;
    }
    if (a.name() == "value_floats" && a.type() == onnx::AttributeProto::FLOATS) {
      onnx::TensorProto t;
      t.set_data_type(onnx::TensorProto::FLOAT);
      t.add_dims(a.floats_size());
      *t.mutable_float_data() = a.floats();
      return t;
    }
  }
  return std::nullopt;
}

bool IsDefaultDomainConstant(const onnx::NodeProto& node) {
  return training::IsDefaultOp(node, "Constant") && node.output_size() == 1;
}

}  // namespace

bool IsPromotableConstant(const onnx::NodeProto& node) {
  return IsDefaultDomainConstant(node) && FloatConstant(node).has_value();
}

absl::StatusOr<bool> PromoteConstantsPass::RunImpl(onnx::ModelProto* model) {
  onnx::GraphProto* g = model->mutable_graph();
  bool changed = false;
  std::vector<int> kept;  // the nodes that stay, in order
  for (int k = 0; k < g->node_size(); ++k) {
    const onnx::NodeProto& node = g->node(k);
    std::optional<onnx::TensorProto> value;
    if (IsDefaultDomainConstant(node)) value = FloatConstant(node);
    if (!value.has_value()) {
      kept.push_back(k);
      continue;
    }
    value->set_name(node.output(0));
    if (model->ir_version() < 4) {  // before IR 4, every initializer is also an input
      onnx::ValueInfoProto* in = g->add_input();
      in->set_name(value->name());
      auto* type = in->mutable_type()->mutable_tensor_type();
      type->set_elem_type(onnx::TensorProto::FLOAT);
      auto* shape = type->mutable_shape();
      for (int64_t d : value->dims()) shape->add_dim()->set_dim_value(d);
    }
    MoveTensorProto(std::move(*value), g->add_initializer());
    changed = true;
  }
  graph::Rearrange(g->mutable_node(), kept);
  return changed;
}

}  // namespace passes
}  // namespace qat
