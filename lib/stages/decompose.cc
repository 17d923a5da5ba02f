#include "qat/decompose.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "core/model_internal.h"
#include "passes/decompose.h"
#include "qat/status_macros.h"

namespace qat {

absl::StatusOr<Model> DecomposeCustomOps(const Model& model,
                                         const DecomposeOptions& options) {
  onnx::ModelProto proto = ModelAccess::Proto(model);
  passes::DecomposeConfig config;
  config.lsq_sums_in_double = options.lsq_sums_in_double;
  QAT_ASSIGN_OR_RETURN(const bool changed, passes::DecomposePass(config).Run(&proto));
  if (!changed) return model;
  // Loading checks the result once and infers the new values' shapes.
  proto.mutable_graph()->clear_value_info();
  std::string bytes;
  if (!proto.SerializeToString(&bytes)) {
    return absl::InternalError(absl::StrCat("cannot serialize ", model.source()));
  }
  return Model::FromBytes(bytes, model.source() + " (decomposed)");
}

}  // namespace qat
