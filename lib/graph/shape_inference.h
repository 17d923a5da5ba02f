// InferShapesLeniently: ONNX shape inference in place, keeping what can be
// inferred (a node it cannot type leaves its outputs unknown instead of
// failing the model), with data propagation, so that shapes computed by
// Shape, Gather and Concat are known.  For passes that need the shapes of
// a graph they changed; the pipeline's strict check (pass_pipeline.h) is
// another thing and runs on a copy.
#ifndef QAT_LIB_GRAPH_SHAPE_INFERENCE_H_
#define QAT_LIB_GRAPH_SHAPE_INFERENCE_H_

#include "absl/status/status.h"
#include "onnx/onnx_pb.h"

namespace qat {
namespace graph {

absl::Status InferShapesLeniently(onnx::ModelProto* model);

}  // namespace graph
}  // namespace qat

#endif  // QAT_LIB_GRAPH_SHAPE_INFERENCE_H_
