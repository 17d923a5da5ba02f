// DecomposePass: libqat's custom ops rewritten into standard ONNX ops, so that
// a training graph also runs in a runtime that knows only standard ops (ONNX
// Runtime without contrib ops, for example).
//
// Before:  x ─> FakeQuant(s, z) ─> y, mask            (com.microsoft / ai.libqat)
// After:   x ─> Div(s) ─> Round ─> Add(z) ─┬> Clip(qmin, qmax) ─> Sub(z) ─> Mul(s) ─> y
//                                          └> GreaterOrEqual(qmin) And LessOrEqual(qmax) ─> mask
//
// Before:  dY, mask ─> FakeQuantGrad ─> dX              (com.microsoft)
// After:   Where(mask, dY, 0) ─> dX
//
// Before:  X, dY, s, z ─> FakeQuantLsqGrad ─> dX, dScale, dZeroPoint   (ai.libqat)
// After:   u = Div(X, s), r = Round(u), v = Add(r, z) as above, then
//          dX         = Where(qmin <= v <= qmax, dY, 0)
//          local      = Where(v < qmin, qmin - z, Where(v > qmax, qmax - z, Sub(r, u)))
//          dScale     = Cast(Mul(ReduceSum(Mul(Cast(dY), Cast(local))), g))
//          dZeroPoint = Cast(Mul(Mul(ReduceSum(Where(v < qmin, Cast(dY), Where(v > qmax,
//                       Cast(dY), 0))), Neg(Cast(s))), g))
//          with Cast to float64 and back (DecomposeConfig::lsq_sums_in_double).
//
// Before:  X ─> BatchMean ─> Y                          (ai.libqat)
// After:   ReduceMean(X, every axis but 1, keepdims) ─> Identity ─> Y
//          (one process's batch; float sums against the kernel's double, so
//          equal up to rounding; needs X's rank, as condition 3 says)
//
// Conditions:
//  1. only nodes of the five custom ops are rewritten; a graph without any is
//     left as it is (Run returns false);
//  2. the default domain must be imported at opset 13 or newer (the ops above
//     with these spellings and semantics); a graph that imports no default
//     domain at all gets opset 13; an older import is FailedPrecondition,
//     since raising it would change the meaning of the graph's other nodes;
//  3. a per-channel node (ai.libqat FakeQuant, or FakeQuantLsqGrad with a 1-D
//     scale of more than one element) needs X's rank, from the graph's shapes
//     (shape inference runs when they are missing): scale and zero point are
//     reshaped to [C, 1, ..., 1] so that they broadcast along `axis`;
//  4. a FakeQuantLsqGrad needs its scale's shape (per tensor: a scalar or one
//     element);
//  5. scales and zero points that are initializers are validated as the
//     executor validates them (a scale positive and finite, a zero point an
//     integer in range): standard ops cannot report a bad parameter at run
//     time, so the pass reports it instead;
//  6. the rewritten nodes' outputs keep their names; optional outputs that
//     are absent are not computed; the custom domains' imports are dropped
//     when no node uses them any more; the graph is re-sorted.
//
// Algebra (qat/kernels/fake_quant_reference.h defines every bit):
//  - FakeQuant divides (not multiplies by 1/s), rounds half to even (ONNX
//    Round), and Clip keeps NaN (ONNX leaves that open; libqat's executor and
//    ONNX Runtime keep it, and ctest ort.decompose-edges checks it): the
//    decomposed forward, mask and dX are bit for bit the custom ops'
//    results, NaN and ±Inf included (NaN fails both comparisons and ±Inf
//    one, so the mask is false).  FakeQuantGrad is a Where, not a Mul by the
//    mask, so that dX is +0 outside even for an infinite or negative dY.
//  - LSQ: the reference sums float products in a fixed float tree
//    (qat/kernels/fake_quant_reference.h); the decomposition forms each
//    product exactly in double with Cast and Mul, sums with ReduceSum in
//    float64, in the runtime's summation order, and multiplies by g (and -s)
//    in the reference's order.  The two differ within the kernel tree's
//    bound, about 41 * 2^-24 * g * sum|terms| (the tests check it from each
//    node's terms; most elements come out bit-identical).  With lsq_sums_in_double
//    = false (a runtime without float64 kernels) the products are rounded to
//    float and the sum runs in float: the error is then within the
//    recursive-summation bound (n + 2) * 2^-24 * g * sum|terms| for n terms
//    per channel (measured: 1.1e-6 relative on 100000 terms).
#ifndef QAT_LIB_PASSES_DECOMPOSE_H_
#define QAT_LIB_PASSES_DECOMPOSE_H_

#include "graph/graph_pass.h"

namespace qat {
namespace passes {

struct DecomposeConfig {
  // LSQ's sums in float64, as the reference kernel sums; false keeps every
  // op in float32.
  bool lsq_sums_in_double = true;
};

class DecomposePass : public GraphPass {
 public:
  explicit DecomposePass(DecomposeConfig config = {}) : config_(config) {}
  absl::string_view name() const override { return "decompose"; }

 private:
  absl::StatusOr<bool> RunImpl(onnx::ModelProto* model) override;
  DecomposeConfig config_;
};

}  // namespace passes
}  // namespace qat

#endif  // QAT_LIB_PASSES_DECOMPOSE_H_
