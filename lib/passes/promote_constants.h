// PromoteConstantsPass: float tensors held by Constant nodes become
// initializers, so that every later stage treats them as the weights they
// are (paddle2onnx writes weights this way): they train by default, can be
// frozen, and quantize as weights.
//
// Before:  Constant(value = W) ─> W ─> Conv
// After:   W (initializer)  ─> Conv
//
// Applies to a Constant node of the default domain in the main graph when
// its `value` is a float tensor, or it has `value_float` / `value_floats`.
// The initializer takes the node's output name, so nothing else changes.
// Other Constant nodes (int64 shapes and axes, say) stay: the passes that
// fold shape computations read them where they are.
#ifndef QAT_LIB_PASSES_PROMOTE_CONSTANTS_H_
#define QAT_LIB_PASSES_PROMOTE_CONSTANTS_H_

#include "graph/graph_pass.h"

namespace qat {
namespace passes {

// Whether the pass would promote `node` (a float Constant of the default
// domain), for callers that skip the pass when nothing would change.
bool IsPromotableConstant(const onnx::NodeProto& node);

class PromoteConstantsPass : public GraphPass {
 public:
  absl::string_view name() const override { return "promote_constants"; }

 private:
  absl::StatusOr<bool> RunImpl(onnx::ModelProto* model) override;
};

}  // namespace passes
}  // namespace qat

#endif  // QAT_LIB_PASSES_PROMOTE_CONSTANTS_H_
