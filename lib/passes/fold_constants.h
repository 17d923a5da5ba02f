// FoldConstantsPass: turns constant subexpressions that exporters put in
// front of weights into initializers, so that later passes see the weights.
//
// Before:  Constant ─> Transpose ─> MatMul        W ─> Unsqueeze ─> Gemm
// After:   W' (initializer) ─> MatMul              W' ─> Gemm
//
// Applies to a node when every input is an initializer (or absent) and it is:
//  1. Constant with a `value` tensor;
//  2. Identity, Reshape, Flatten, Squeeze or Unsqueeze, whose output shape
//     shape inference recorded (the data is unchanged, only the dims);
//  3. Transpose.
// The folded node's output becomes an initializer of the same name, and
// initializers that nothing reads any more are pruned (shared inputs stay,
// since other nodes still read them).  An initializer that a graph input
// overrides is not a constant.
#ifndef QAT_LIB_PASSES_FOLD_CONSTANTS_H_
#define QAT_LIB_PASSES_FOLD_CONSTANTS_H_

#include "graph/graph_pass.h"

namespace qat {
namespace passes {

class FoldConstantsPass : public GraphPass {
 public:
  absl::string_view name() const override { return "fold_constants"; }

 private:
  absl::StatusOr<bool> RunImpl(onnx::ModelProto* model) override;
};

}  // namespace passes
}  // namespace qat

#endif  // QAT_LIB_PASSES_FOLD_CONSTANTS_H_
