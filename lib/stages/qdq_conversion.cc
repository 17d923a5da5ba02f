#include "qat/qdq_conversion.h"

#include "absl/strings/str_cat.h"
#include "core/model_internal.h"
#include "passes/fuse_qdq.h"
#include "qat/status_macros.h"
#include "qat/training_artifacts.h"

namespace qat {
namespace {

absl::StatusOr<Model> Reload(onnx::ModelProto& proto, const std::string& source) {
  proto.mutable_graph()->clear_value_info();  // re-inferred on load
  std::string bytes;
  if (!proto.SerializeToString(&bytes)) {
    return absl::InternalError(absl::StrCat("cannot serialize ", source));
  }
  return Model::FromBytes(bytes, source);
}

}  // namespace

absl::StatusOr<Model> FuseQdqToFakeQuant(const Model& model,
                                         std::vector<std::string>* warnings) {
  onnx::ModelProto proto = ModelAccess::Proto(model);
  passes::FuseQdqToFakeQuantPass pass;
  QAT_RETURN_IF_ERROR(pass.Run(&proto).status());
  if (warnings != nullptr) *warnings = pass.warnings();
  return Reload(proto, model.source() + " (fused)");
}

absl::StatusOr<Model> ExportQuantizedModel(const Model& eval,
                                           const std::map<std::string, Tensor>& params,
                                           const ExportOptions& options) {
  QAT_ASSIGN_OR_RETURN(Model inference, ExportInferenceModel(eval, params));
  onnx::ModelProto proto = ModelAccess::Proto(inference);
  QAT_RETURN_IF_ERROR(
      passes::FakeQuantToQdqPass(!options.keep_float_weights).Run(&proto).status());
  return Reload(proto, eval.source() + " (exported)");
}

}  // namespace qat
