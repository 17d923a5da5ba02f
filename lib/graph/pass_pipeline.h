// PassPipeline: an explicit, ordered list of graph passes (after ONNX
// Runtime's graph_transformer_utils.cc and XLA's HloPassPipeline).
//
//   PassPipelineOptions options;         // options.disabled = {"prune"};
//   PassPipeline pipeline(options);
//   pipeline.Add(std::make_unique<FoldConstantsPass>());
//   pipeline.Add(std::make_unique<InsertQdqPass>(table, config));
//   QAT_ASSIGN_OR_RETURN(bool changed, pipeline.Run(&proto));
//
// Passes run in the order they were added.  Each has an off switch: its
// name in options.disabled skips it (a name that is in no pass is an
// error, so a typo does not silently run everything).  With
// options.check_invariants, each pass is followed by onnx::checker and
// strict ONNX shape inference on a copy of the model (the model itself is
// not touched, so results do not depend on the switch).  Any error, from a
// pass or from the checks after it, comes back prefixed
// "Failed after <pass>: ".
//
// The pipeline does not re-check the model at the end: the caller turns
// the result into a Model once (ModelAccess::FromProto), which checks and
// infers shapes.
#ifndef QAT_LIB_GRAPH_PASS_PIPELINE_H_
#define QAT_LIB_GRAPH_PASS_PIPELINE_H_

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "graph/graph_pass.h"
#include "onnx/onnx_pb.h"

namespace qat {
namespace passes {

// Invariant checks are on by default in debug builds (NDEBUG not defined),
// and in any build when the environment sets QAT_CHECK_PASS_INVARIANTS=1
// (the test suites do, so every stage they run is checked pass by pass).
bool CheckInvariantsByDefault();

struct PassPipelineOptions {
  // Names of the passes to skip.
  std::set<std::string> disabled;
  // onnx::checker and shape inference after every pass.
  bool check_invariants = CheckInvariantsByDefault();
};

class PassPipeline {
 public:
  explicit PassPipeline(PassPipelineOptions options = {}) : options_(std::move(options)) {}

  // Appends a pass; returns it, so that the caller can read what it
  // reports (warnings, say) after Run.
  template <typename Pass>
  Pass& Add(std::unique_ptr<Pass> pass) {
    Pass& ref = *pass;
    passes_.push_back(std::move(pass));
    return ref;
  }

  // The passes' names, in order.
  std::vector<std::string> pass_names() const;

  // Runs the enabled passes in order on `model`.  Returns true when any of
  // them changed it.  On error the model may be partly transformed.
  absl::StatusOr<bool> Run(onnx::ModelProto* model) const;

 private:
  PassPipelineOptions options_;
  std::vector<std::unique_ptr<GraphPass>> passes_;
};

// onnx::checker and strict shape inference on a copy of `model` (its
// value_info dropped, so that stale shapes from before a pass do not
// count).  InvalidArgument with ONNX's message.
absl::Status CheckInvariants(const onnx::ModelProto& model);

}  // namespace passes
}  // namespace qat

#endif  // QAT_LIB_GRAPH_PASS_PIPELINE_H_
