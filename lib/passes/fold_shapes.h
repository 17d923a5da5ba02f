// FoldShapesPass: shape computations whose values the model fixes become
// constants, even when other dimensions (the batch) are symbolic.
//
// Before:  x [N,128,7] ─> Shape ─> Gather(1) ─> Unsqueeze ─> Concat(.., -1) ─> Reshape
// After:   128 (initializer) ─> Unsqueeze ...; or, when every element is
//          static, the Concat itself becomes an initializer
//
// Tracks 1-D int64 "shape vectors" whose elements are dims of a value (-1
// where not static):
//  1. Shape(x) (opset 15's start and end included) gives x's dims;
//  2. Gather(v, constant indices, axis 0), Slice(v, constant starts, ends,
//     axes 0, steps) and Unsqueeze(scalar v, axes 0) pick elements of a
//     tracked vector; Concat(axis 0) of tracked vectors and int64
//     constants joins them;
//  3. a tracked node whose elements are all static is replaced by an int64
//     initializer of the same name (a scalar for a Gather with a scalar
//     index); the others stay as they are.
// Values computed from a graph input's data, not its shape, are never
// folded.  Initializers nothing reads any more are pruned.
#ifndef QAT_LIB_PASSES_FOLD_SHAPES_H_
#define QAT_LIB_PASSES_FOLD_SHAPES_H_

#include "graph/graph_pass.h"

namespace qat {
namespace passes {

class FoldShapesPass : public GraphPass {
 public:
  absl::string_view name() const override { return "fold_shapes"; }

 private:
  absl::StatusOr<bool> RunImpl(onnx::ModelProto* model) override;
};

}  // namespace passes
}  // namespace qat

#endif  // QAT_LIB_PASSES_FOLD_SHAPES_H_
