// Which nodes quantization touches, and which of their tensors: shared by
// calibration (what to observe) and the QDQ pass (where to insert pairs),
// so that the two always agree.
#ifndef QAT_LIB_PASSES_NODE_SELECTION_H_
#define QAT_LIB_PASSES_NODE_SELECTION_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "graph/graph_index.h"
#include "onnx/onnx_pb.h"

namespace qat {
namespace quantization {

class NodeSelection {
 public:
  // InvalidArgument when a listed node name does not exist in the graph.
  static absl::StatusOr<NodeSelection> Create(const onnx::GraphProto& graph,
                                              std::vector<std::string> op_types,
                                              std::vector<std::string> include_nodes,
                                              std::vector<std::string> exclude_nodes);

  bool Selects(const onnx::NodeProto& node) const;

  // MatMul, Gemm and Conv take their data in inputs 0 and 1; input 2 (Gemm's
  // C, Conv's bias) stays in float.
  static constexpr int kDataInputs = 2;

  // The activation tensors (inputs that are not initializers, and outputs)
  // and the weights (initializer inputs) of the selected nodes, each once,
  // in graph order.
  struct Tensors {
    std::vector<std::string> activations;
    std::vector<std::string> weights;
  };
  Tensors Collect(const onnx::GraphProto& graph) const;

  // The tensor that stands for a selected node's output: its output 0, or,
  // for a Conv whose output only a training-mode BatchNormalization reads,
  // that BatchNormalization's output.  QAT folds that BatchNormalization
  // into the Conv (passes/fold_batch_norm_qat.h), so the deployed layer's
  // output is the normalized one: it is calibrated and quantized there.
  static std::string Output(const graph::GraphIndex& index, const onnx::NodeProto& node);

 private:
  absl::flat_hash_set<std::string> op_types_, include_, exclude_;
};

}  // namespace quantization
}  // namespace qat

#endif  // QAT_LIB_PASSES_NODE_SELECTION_H_
