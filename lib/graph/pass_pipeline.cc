#include "graph/pass_pipeline.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/model_internal.h"
#include "qat/status_macros.h"

namespace qat {
namespace passes {

bool CheckInvariantsByDefault() {
#ifndef NDEBUG
  return true;
#else
  static const bool from_environment = [] {
    const char* v = std::getenv("QAT_CHECK_PASS_INVARIANTS");
    return v != nullptr && std::string(v) == "1";
  }();
  return from_environment;
#endif
}

std::vector<std::string> PassPipeline::pass_names() const {
  std::vector<std::string> names;
  for (const auto& p : passes_) names.emplace_back(p->name());
  return names;
}

absl::StatusOr<bool> PassPipeline::Run(onnx::ModelProto* model) const {
  const std::vector<std::string> names = pass_names();
  for (const std::string& off : options_.disabled) {
    if (std::find(names.begin(), names.end(), off) == names.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot disable pass '", off, "': the pipeline has ", absl::StrJoin(names, ", ")));
    }
  }
  bool changed = false;
  for (const auto& pass : passes_) {
    if (options_.disabled.count(std::string(pass->name())) != 0) continue;
    // GraphPass::Run prefixes its own errors with "Failed after <pass>".
    QAT_ASSIGN_OR_RETURN(bool pass_changed, pass->Run(model));
    changed |= pass_changed;
    if (options_.check_invariants) {
      if (absl::Status s = CheckInvariants(*model); !s.ok()) {
        return GraphPass::FailedAfter(pass->name(), s);
      }
    }
  }
  return changed;
}

absl::Status CheckInvariants(const onnx::ModelProto& model) {
  onnx::ModelProto copy = model;
  copy.mutable_graph()->clear_value_info();
  return CheckModelProto(&copy, "the graph", ModelLoadOptions{});
}

}  // namespace passes
}  // namespace qat
