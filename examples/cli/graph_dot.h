// Pictures of ONNX graphs: Graphviz DOT text, laid out like the pictures in
// ONNX Runtime's QAT tutorial (Netron's style).
//
//   - each node is a box titled by its op type; its initializer inputs are
//     listed inside it, a tensor by name and shape ("B <500x784>"), a scalar
//     by value ("y_scale = 0.0237");
//   - graph inputs and outputs are ellipses;
//   - an edge per activation, labeled with its inferred shape;
//   - QuantizeLinear / DequantizeLinear, FakeQuant and gradient nodes are
//     coloured so that the quantization structure stands out.
//
// RenderDotToSvg runs Graphviz's `dot -Tsvg` when `dot` is on PATH.
#ifndef QAT_EXAMPLES_CLI_GRAPH_DOT_H_
#define QAT_EXAMPLES_CLI_GRAPH_DOT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "qat/model.h"

namespace qat_cli {

// The model's main graph as a DOT digraph titled `title`, and how many op
// nodes it draws (Graphviz's layout time grows faster than that count).
struct DotGraph {
  std::string text;
  int nodes = 0;
};
absl::StatusOr<DotGraph> ModelToDot(const qat::Model& model, const std::string& title);

// True when Graphviz's `dot` is on PATH.
bool HaveGraphviz();

// dot -Tsvg DOT_PATH, written atomically to SVG_PATH.  FailedPrecondition without `dot`,
// Internal when dot fails.
absl::Status RenderDotToSvg(const std::string& dot_path, const std::string& svg_path);

}  // namespace qat_cli

#endif  // QAT_EXAMPLES_CLI_GRAPH_DOT_H_
