// GraphEditor: appends nodes, constants and outputs to an ONNX graph, with
// fresh names and the opset-dependent spellings of standard ops.
//
// The graph passes (loss insertion, the gradient builder, the model zoo)
// write ONNX through this one class, so that naming, the opset rules and the
// shape lookup live in one place.
#ifndef QAT_LIB_GRAPH_GRAPH_EDITOR_H_
#define QAT_LIB_GRAPH_GRAPH_EDITOR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "onnx/onnx_pb.h"

namespace qat {
namespace training {

// A value's element type and shape as shape inference left them.  Unknown
// dimensions are -1; `rank_known` is false when nothing is known.
// `symbols` holds each dimension's dim_param ("" for none) when shape
// inference named it: two unknown dimensions with one name are equal.
struct ValueShape {
  int32_t elem_type = 0;
  bool rank_known = false;
  std::vector<int64_t> dims;
  std::vector<std::string> symbols;  // empty, or one per dimension
  int64_t rank() const { return static_cast<int64_t>(dims.size()); }
  bool fully_known() const;
};

class GraphEditor {
 public:
  // `model` must outlive the editor.  Names already used in the graph are
  // never handed out again.
  explicit GraphEditor(onnx::ModelProto* model);

  onnx::GraphProto& graph() { return *graph_; }
  // The imported version of the default ONNX domain.
  int64_t opset() const { return opset_; }

  // Imports `domain` at `version` unless the model imports it already.
  void EnsureOpset(const std::string& domain, int64_t version);
  // Raises the default domain's import to `version` (no change when it is
  // that or newer), for a backward graph that needs a newer op (such as
  // ScatterElements' reduction, opset 16).  Only from opset 13 on, where
  // the ops the graph can hold keep their meaning but BatchNormalization,
  // whose opset-14 form takes training mode as an attribute and drops the
  // saved_mean and saved_var outputs: those nodes are rewritten (an error
  // naming the node when something reads those outputs).  The IR version
  // becomes at least 8.
  absl::Status RaiseOpset(int64_t version);

  // A name not used in the graph yet, derived from `hint`.
  std::string FreshName(const std::string& hint);

  // Appends a node of the default domain with one output, named from
  // `hint`; returns the output name.
  std::string Add(const std::string& op, std::vector<std::string> inputs,
                  const std::string& hint,
                  std::vector<onnx::AttributeProto> attrs = {});
  // Appends a node with the given outputs (already chosen names).
  onnx::NodeProto& AddNode(const std::string& op, const std::string& domain,
                           std::vector<std::string> inputs,
                           std::vector<std::string> outputs,
                           std::vector<onnx::AttributeProto> attrs = {});

  // Float and int64 constants, stored as initializers.
  std::string ConstantFloat(float value, const std::string& hint);
  std::string ConstantInt64s(const std::vector<int64_t>& values,
                             const std::string& hint);
  // Adds `tensor` under a fresh name from its own (moved in when given an
  // rvalue); returns the name.
  std::string Initializer(onnx::TensorProto tensor);

  // Ops whose spelling changed across opsets.
  std::string ReduceSum(const std::string& x, const std::vector<int64_t>& axes,
                        bool keepdims, const std::string& hint);
  std::string ReduceMean(const std::string& x,
                         const std::vector<int64_t>& axes, bool keepdims,
                         const std::string& hint);
  std::string Unsqueeze(const std::string& x, const std::vector<int64_t>& axes,
                        const std::string& hint);
  std::string Reshape(const std::string& x, const std::string& shape,
                      const std::string& hint);
  std::string Transpose(const std::string& x, const std::vector<int64_t>& perm,
                        const std::string& hint);
  // Slice(x, starts, ends, axes) with constant lists (opset 10+ spelling).
  std::string Slice(const std::string& x, const std::vector<int64_t>& starts,
                    const std::vector<int64_t>& ends, const std::vector<int64_t>& axes,
                    const std::string& hint);

  // The shape of a value, from the graph's inputs, outputs, value_info and
  // initializers (in that order of precedence); nullopt when the graph does
  // not declare it.  Looked up in maps that follow what the editor adds and
  // what is appended to those lists; an entry replaced in place is not seen.
  std::optional<ValueShape> ShapeOf(const std::string& name) const;
  // The initializer of that name, or nullptr (the same maps).
  const onnx::TensorProto* FindInitializer(const std::string& name) const;
  // The value of a constant: an initializer, or a Constant node's `value`;
  // nullptr when `name` is computed (or unknown).
  const onnx::TensorProto* FindConstant(const std::string& name) const;
  // The values of an int64 or int32 constant (FindConstant); nullopt when
  // `name` is computed, unknown or of another type.
  std::optional<std::vector<int64_t>> ConstantInts(const std::string& name) const;
  // Records the shape of a value the editor created, for later lookups.
  void SetShape(const std::string& name, const ValueShape& shape);
  // Declares a value's element type and shape in the graph's value_info
  // (where shape inference could not tell it): its entry there is
  // replaced, or one added, for later lookups and for shape inference to
  // go on from.
  void DeclareValueShape(const std::string& name, const ValueShape& shape);

  // Adds a graph output with the given element type and shape.
  void AddOutput(const std::string& name, const ValueShape& shape);
  void AddInput(const std::string& name, const ValueShape& shape);
  // Removes every graph output (to list them again in another order).
  void ClearOutputs();

 private:
  // name -> position in one of the graph's declaration lists, first
  // occurrence; `indexed` is how much of the list the map covers.
  struct ListIndex {
    absl::flat_hash_map<std::string, int> position;
    int indexed = 0;
  };
  // The position of `name` in `list`, or -1; catches up with appends.
  template <typename List>
  static int Find(const List& list, ListIndex* index, const std::string& name);
  void Reserve(const std::string& name);

  onnx::ModelProto* model_;
  onnx::GraphProto* graph_;
  int64_t opset_ = 0;
  absl::flat_hash_set<std::string> used_;
  // The next suffix FreshName tries per hint, so that a hint used n times
  // costs O(n) in all, not O(n^2).
  absl::flat_hash_map<std::string, int> next_suffix_;
  absl::flat_hash_map<std::string, ValueShape> shapes_;
  mutable ListIndex inputs_, outputs_, value_info_, initializers_;
  mutable ListIndex constant_nodes_;  // Constant nodes, by output
};

// Attribute helpers.
onnx::AttributeProto AttrInt(const std::string& name, int64_t value);
onnx::AttributeProto AttrFloat(const std::string& name, float value);
onnx::AttributeProto AttrInts(const std::string& name,
                              const std::vector<int64_t>& values);
onnx::AttributeProto AttrString(const std::string& name,
                                const std::string& value);
onnx::AttributeProto AttrTensor(const std::string& name,
                                const onnx::TensorProto& value);

// Reads an attribute of a node, with a default.
int64_t GetAttrInt(const onnx::NodeProto& node, const std::string& name,
                   int64_t fallback);
float GetAttrFloat(const onnx::NodeProto& node, const std::string& name,
                   float fallback);
std::vector<int64_t> GetAttrInts(const onnx::NodeProto& node,
                                 const std::string& name,
                                 std::vector<int64_t> fallback = {});
std::string GetAttrString(const onnx::NodeProto& node, const std::string& name,
                          std::string fallback);

// A float tensor proto with the given shape and values.
onnx::TensorProto MakeFloatTensor(const std::string& name,
                                  const std::vector<int64_t>& dims,
                                  const std::vector<float>& values);

// The positions that ONNX's Slice takes along an axis of size `size` from
// `start` to `end` by `step` (not 0), after its clamping: [0, size] going
// forward, [-1, size - 1] going backward.
std::vector<int64_t> SlicePositions(int64_t size, int64_t start, int64_t end, int64_t step);

// Reorders the graph's nodes topologically, keeping the existing order
// wherever it is already valid (passes append nodes at the end): the order
// of repeated in-order sweeps that each emit every node whose producers
// were emitted before it, computed in O(n log n).  InvalidArgument, naming
// a node, when the graph has a cycle.
absl::Status TopologicalSort(onnx::GraphProto* graph);

// "node 'name' (OpType)" for error messages.
std::string DescribeNode(const onnx::NodeProto& node);

// The node is in ONNX's default domain ("" or "ai.onnx"); IsDefaultOp also
// checks its op type.
bool IsDefaultDomain(const onnx::NodeProto& node);
bool IsDefaultOp(const onnx::NodeProto& node, const char* op_type);

// Sets the version of the model's default-domain opset import ("" or
// "ai.onnx"); other domains' imports stay.
void SetDefaultOpsetVersion(onnx::ModelProto* model, int64_t version);

}  // namespace training
}  // namespace qat

#endif  // QAT_LIB_GRAPH_GRAPH_EDITOR_H_
