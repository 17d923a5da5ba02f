#include "qat/quantize.h"

#include "absl/strings/str_cat.h"
#include "model_internal.h"
#include "passes/fold_constants.h"
#include "passes/insert_qdq.h"
#include "qat/status_macros.h"

namespace qat {

absl::StatusOr<Model> QuantizeModel(const Model& model, const CalibrationTable& table,
                                    const QuantizeOptions& options) {
  onnx::ModelProto proto = ModelAccess::Proto(model);
  // Fold first so that weights behind Constant/Transpose/... are visible.
  QAT_RETURN_IF_ERROR(passes::FoldConstantsPass().Run(&proto).status());
  QAT_RETURN_IF_ERROR(passes::InsertQdqPass(table, options).Run(&proto).status());
  passes::PruneUnusedInitializers(proto.mutable_graph());
  proto.mutable_graph()->clear_value_info();  // re-inferred on load
  std::string bytes;
  if (!proto.SerializeToString(&bytes)) {
    return absl::InternalError("cannot serialize the quantized model");
  }
  return Model::FromBytes(bytes, model.source() + " (quantized)");
}

}  // namespace qat
