#include "qat/quantize.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "model_internal.h"
#include "passes/fold_constants.h"
#include "passes/insert_qdq.h"
#include "qat/status_macros.h"

namespace qat {

absl::StatusOr<Model> QuantizeModel(const Model& model, const CalibrationTable& table,
                                    const QuantizeOptions& options) {
  onnx::ModelProto proto = ModelAccess::Proto(model);
  // A table entry for a tensor the model does not have is most likely a
  // typo in a hand-edited table: say so rather than ignore it.
  std::set<std::string> names;
  for (const auto& v : proto.graph().input()) names.insert(v.name());
  for (const auto& t : proto.graph().initializer()) names.insert(t.name());
  for (const auto& n : proto.graph().node()) names.insert(n.output().begin(), n.output().end());
  for (const auto& [name, entry] : table.entries()) {
    if (names.count(name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the calibration table names tensor '", name, "', which '", model.source(),
          "' does not have"));
    }
  }
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
