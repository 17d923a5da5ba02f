#include "train/parameters.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "core/model_internal.h"
#include "qat/status_macros.h"

namespace qat {
namespace training {

absl::StatusOr<DetachedParameters> DetachParameters(
    const Model& model, const std::vector<std::string>& names) {
  onnx::ModelProto proto = ModelAccess::Proto(model);
  onnx::GraphProto* graph = proto.mutable_graph();
  std::set<std::string> wanted(names.begin(), names.end());
  std::map<std::string, Tensor> values;
  auto* inits = graph->mutable_initializer();
  for (int i = 0; i < inits->size();) {
    const onnx::TensorProto& t = inits->Get(i);
    if (wanted.count(t.name()) == 0) {
      ++i;
      continue;
    }
    QAT_ASSIGN_OR_RETURN(Tensor value, ParseTensorProto(t.SerializeAsString()));
    // Declare it as an input unless the graph already lists it as one.
    bool listed = false;
    for (const auto& in : graph->input()) listed |= in.name() == t.name();
    if (!listed) {
      onnx::ValueInfoProto* in = graph->add_input();
      in->set_name(t.name());
      auto* type = in->mutable_type()->mutable_tensor_type();
      type->set_elem_type(t.data_type());
      auto* shape = type->mutable_shape();
      for (int64_t d : t.dims()) shape->add_dim()->set_dim_value(d);
    }
    values.emplace(t.name(), std::move(value));
    inits->DeleteSubrange(i, 1);
  }
  for (const std::string& n : names) {
    if (values.count(n) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", n, "' is not an initializer of ", model.source()));
    }
  }
  std::string bytes;
  if (!proto.SerializeToString(&bytes)) {
    return absl::InternalError(absl::StrCat("cannot serialize ", model.source()));
  }
  QAT_ASSIGN_OR_RETURN(Model detached, Model::FromBytes(bytes, model.source()));
  return DetachedParameters{std::move(detached), std::move(values)};
}

}  // namespace training
}  // namespace qat
