#include "train/parameters.h"

#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "core/model_internal.h"
#include "core/onnx_tensor.h"
#include "graph/graph_index.h"
#include "qat/status_macros.h"

namespace qat {
namespace training {

absl::StatusOr<DetachedParameters> DetachParameters(
    const Model& model, const std::vector<std::string>& names) {
  onnx::ModelProto proto = ModelAccess::Proto(model);
  onnx::GraphProto* graph = proto.mutable_graph();
  const std::unordered_set<std::string> wanted(names.begin(), names.end());
  std::map<std::string, Tensor> values;
  {
    const graph::GraphIndex index(*graph);
    for (const auto& t : graph->initializer()) {
      if (wanted.count(t.name()) == 0) continue;
      QAT_ASSIGN_OR_RETURN(Tensor value, TensorFromProto(t));
      // Declare it as an input unless the graph already lists it as one.
      if (!values.emplace(t.name(), std::move(value)).second) continue;
      if (index.IsGraphInput(t.name())) continue;
      onnx::ValueInfoProto* in = graph->add_input();
      in->set_name(t.name());
      auto* type = in->mutable_type()->mutable_tensor_type();
      type->set_elem_type(t.data_type());
      auto* shape = type->mutable_shape();
      for (int64_t d : t.dims()) shape->add_dim()->set_dim_value(d);
    }
  }
  for (const std::string& n : names) {
    if (values.count(n) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", n, "' is not an initializer of ", model.source()));
    }
  }
  google::protobuf::RepeatedPtrField<onnx::TensorProto> kept;
  for (auto& t : *graph->mutable_initializer()) {
    if (wanted.count(t.name()) == 0) kept.Add()->Swap(&t);
  }
  graph->mutable_initializer()->Swap(&kept);
  // The model passed the checker and shape inference, and an initializer
  // that becomes an input of the same type and shape changes neither: no
  // need to check it again.
  ModelLoadOptions unchanged;
  unchanged.check = false;
  unchanged.infer_shapes = false;
  QAT_ASSIGN_OR_RETURN(Model detached, ModelAccess::FromProto(std::move(proto), model.source(),
                                                              unchanged));
  return DetachedParameters{std::move(detached), std::move(values)};
}

}  // namespace training
}  // namespace qat
