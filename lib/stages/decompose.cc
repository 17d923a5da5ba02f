#include "qat/decompose.h"

#include <memory>
#include <string>

#include "core/model_internal.h"
#include "graph/pass_pipeline.h"
#include "passes/decompose.h"
#include "qat/status_macros.h"

namespace qat {

absl::StatusOr<Model> DecomposeCustomOps(const Model& model,
                                         const DecomposeOptions& options) {
  ArenaModelProto proto = ModelAccess::CopyProto(model);
  passes::DecomposeConfig config;
  config.lsq_sums_in_double = options.lsq_sums_in_double;
  passes::PassPipeline pipeline;
  pipeline.Add(std::make_unique<passes::DecomposePass>(config));
  QAT_ASSIGN_OR_RETURN(const bool changed, pipeline.Run(proto.get()));
  if (!changed) return model;
  return ModelAccess::FromTransformedProto(std::move(proto), model.source() + " (decomposed)");
}

}  // namespace qat
