// InlineControlFlowPass: If and Loop nodes whose control is fixed by
// constants become plain nodes of the enclosing graph, so that the gradient
// builder (which has no rule for If or Loop) and insert_qdq see the ops
// inside them.
//
// Before:  c = true (initializer) ─> If(then: Gemm(x, W) ─> t, else: ...) ─> y
// After:   Gemm(x, W) ─> y
//
//  1. If whose condition is a constant (an initializer no graph input
//     overrides, or a Constant node): the taken branch's nodes and
//     initializers move out, its local names renamed to fresh ones; a
//     branch output produced by a branch node is written under the If's
//     output name, any other (an outer value, a branch initializer, an
//     output listed twice) through an Identity.  Nested subgraphs in the
//     branch that read renamed values are renamed too.
//  2. Loop with a constant trip count M (0 < M <= kMaxUnroll), an absent or
//     constant-true condition, and a body whose condition output is its
//     condition input (directly or through an Identity) or a constant true:
//     M copies of the body, fresh names per copy, the iteration number an
//     int64 constant, loop-carried values chained; each scan output is its
//     per-iteration values, each Unsqueezed on axis 0, then a Concat on
//     axis 0 (what the executor's Loop stacks).  Bodies with subgraphs of
//     their own are left alone.
// Anything else stays as it is; a node the pass looked at and had to leave
// (a constant condition, but a branch it cannot move out) is said in
// warnings().  Nested If/Loop that become top-level are handled in later
// rounds of the same run.
#ifndef QAT_LIB_PASSES_INLINE_CONTROL_FLOW_H_
#define QAT_LIB_PASSES_INLINE_CONTROL_FLOW_H_

#include <string>
#include <vector>

#include "graph/graph_pass.h"

namespace qat {
namespace passes {

class InlineControlFlowPass : public GraphPass {
 public:
  // The largest trip count a Loop is unrolled for.
  static constexpr int64_t kMaxUnroll = 64;

  absl::string_view name() const override { return "inline_control_flow"; }
  // One line per If or Loop the pass could not inline although its control
  // was constant, naming the node and the reason.
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  absl::StatusOr<bool> RunImpl(onnx::ModelProto* model) override;
  std::vector<std::string> warnings_;
};

}  // namespace passes
}  // namespace qat

#endif  // QAT_LIB_PASSES_INLINE_CONTROL_FLOW_H_
