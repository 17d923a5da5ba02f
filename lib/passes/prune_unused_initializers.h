// PruneUnusedInitializersPass: drops the initializers that nothing reads.
//
// Before:  W_old (read by no node), W ─> MatMul
// After:   W ─> MatMul
//
// Applies to every initializer that no node reads and that is not a graph
// output; a graph input of the same name (older models list initializers
// as inputs) goes with it.  The other passes leave such initializers behind
// when they replace a weight (fold_constants, insert_qdq, the QDQ
// conversions).
#ifndef QAT_LIB_PASSES_PRUNE_UNUSED_INITIALIZERS_H_
#define QAT_LIB_PASSES_PRUNE_UNUSED_INITIALIZERS_H_

#include "graph/graph_pass.h"

namespace qat {
namespace passes {

class PruneUnusedInitializersPass : public GraphPass {
 public:
  absl::string_view name() const override { return "prune"; }

 private:
  absl::StatusOr<bool> RunImpl(onnx::ModelProto* model) override;
};

// The pass's work, for passes that end with it.  Returns true when it
// removed anything.
bool PruneUnusedInitializers(onnx::GraphProto* graph);

}  // namespace passes
}  // namespace qat

#endif  // QAT_LIB_PASSES_PRUNE_UNUSED_INITIALIZERS_H_
