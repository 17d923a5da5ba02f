// Decompose: a model's libqat custom ops rewritten into standard ONNX ops, so
// that a training (or eval) model also runs in a runtime that knows only the
// standard ops, such as ONNX Runtime without its contrib ops.
//
//   QAT_ASSIGN_OR_RETURN(Model training, Model::Load("prepared/training.onnx"));
//   QAT_ASSIGN_OR_RETURN(Model portable, DecomposeCustomOps(training));
//   QAT_RETURN_IF_ERROR(SaveModel(portable, "training_standard.onnx"));
//
// Rewritten: com.microsoft FakeQuant (per tensor), ai.libqat FakeQuant (per
// channel), com.microsoft FakeQuantGrad and ai.libqat FakeQuantLsqGrad.  The
// op sequences are in docs/formats.md; lib/passes/decompose.h states the
// conditions.  The result computes what the custom ops compute: FakeQuant's
// output and mask and every straight-through gradient bit for bit; the LSQ
// scale and zero-point gradients sum in float64 as the reference kernel
// does, in the runtime's order instead of the reference's (docs/training.md
// gives the measured agreement).
//
// A model without custom ops comes back unchanged.  Errors: FailedPrecondition
// for a model that imports an ONNX opset older than 13 or whose per-channel
// node has an X of unknown rank; InvalidArgument, naming the node, for a
// constant scale that is not positive and finite or a zero point that is not
// an integer in range (standard ops cannot report those at run time).  The
// result passes onnx::checker and carries inferred shapes.
#ifndef QAT_DECOMPOSE_H_
#define QAT_DECOMPOSE_H_

#include "absl/status/statusor.h"
#include "qat/api.h"
#include "qat/model.h"

namespace qat {

struct DecomposeOptions {
  // The LSQ gradients' sums in float64 (Cast, Mul, ReduceSum), as libqat's
  // kernel sums; false keeps every op in float32, for a runtime without
  // float64 kernels, at the cost of float rounding in the sums.
  bool lsq_sums_in_double = true;
};

QAT_API absl::StatusOr<Model> DecomposeCustomOps(const Model& model,
                                                 const DecomposeOptions& options = {});

}  // namespace qat

#endif  // QAT_DECOMPOSE_H_
