// GraphIndex: the questions every pass asks about a graph, answered from
// hash maps built once (one pass over the graph) instead of a rescan per
// node: is this value a constant, which node produces it, which nodes read
// it, is it an initializer, a graph input or output.
//
// Each family of queries (initializers and constants; graph inputs and
// outputs; producers; consumers; uses) is indexed on its first use, from
// the graph as it is then, so that a pass pays only for what it asks.
// Later edits are not seen: ask about a value before renaming it.  Node
// indices and tensor pointers stay valid while the graph only grows by
// appending (RepeatedPtrField keeps its elements in place), which is how
// the passes edit; removing or reordering nodes or initializers
// invalidates the index.  Not for concurrent use.
#ifndef QAT_LIB_GRAPH_GRAPH_INDEX_H_
#define QAT_LIB_GRAPH_GRAPH_INDEX_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "onnx/onnx_pb.h"
#include "qat/tensor.h"

namespace qat {
namespace graph {

// True when a graph attribute of `node` holds a subgraph (If, Loop, Scan).
bool HasSubgraph(const onnx::NodeProto& node);

// Calls read(name) for every name that the subgraphs of `node` read (node
// inputs and graph outputs, nested subgraphs included).  Names the subgraphs
// define themselves are passed too: ONNX names are unique across scopes, so
// they never match a value of the enclosing graph.
void ForEachSubgraphRead(const onnx::NodeProto& node,
                         const std::function<void(const std::string&)>& read);

class GraphIndex {
 public:
  explicit GraphIndex(const onnx::GraphProto& graph);

  const onnx::GraphProto& graph() const { return *graph_; }

  // Any initializer, also one that a graph input of the same name may
  // override at run time; nullptr when there is none.
  const onnx::TensorProto* FindInitializer(const std::string& name) const;
  bool IsInitializer(const std::string& name) const {
    return FindInitializer(name) != nullptr;
  }
  // Declared in graph.input (initializers listed there included).
  bool IsGraphInput(const std::string& name) const;
  bool IsGraphOutput(const std::string& name) const;

  // A constant: an initializer that no graph input overrides, or the
  // `value` tensor of a Constant node (default domain).
  bool IsConstant(const std::string& name) const { return ConstantProto(name) != nullptr; }
  // The constant's tensor proto, or nullptr.
  const onnx::TensorProto* ConstantProto(const std::string& name) const;
  // The constant's value; InvalidArgument when `name` is not a constant.
  absl::StatusOr<Tensor> ConstantValue(const std::string& name) const;

  // The index of the node that produces `name`, or -1 (a graph input, an
  // initializer, or no such value).  When several nodes claim it (an
  // invalid graph), the last one.
  int Producer(const std::string& name) const;
  // The nodes that read `name`, in graph order, each once.
  const std::vector<int>& Consumers(const std::string& name) const;
  // How many node input slots read `name`, plus one per graph output that
  // names it: 1 means exactly one reader.  A name read inside a node's
  // subgraphs (If's branches, Loop's body) counts as one more use by that
  // node, and makes it a consumer.
  int NumUses(const std::string& name) const;

 private:
  void IndexValues() const;
  void IndexDeclarations() const;
  void IndexProducers() const;
  void IndexConsumers() const;
  void IndexUses() const;

  const onnx::GraphProto* graph_;
  mutable bool values_ = false, declarations_ = false, producers_ = false,
               consumers_ = false, uses_indexed_ = false;
  mutable absl::flat_hash_map<std::string, const onnx::TensorProto*> initializers_;
  mutable absl::flat_hash_map<std::string, const onnx::TensorProto*> constant_nodes_;
  mutable absl::flat_hash_set<std::string> inputs_, outputs_;
  mutable absl::flat_hash_map<std::string, int> producer_;
  mutable absl::flat_hash_map<std::string, std::vector<int>> consumer_;
  mutable absl::flat_hash_map<std::string, int> uses_;
};

}  // namespace graph
}  // namespace qat

#endif  // QAT_LIB_GRAPH_GRAPH_INDEX_H_
