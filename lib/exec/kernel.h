// The contract between the executor and its op kernels.
//
// At compile time the executor finds each node's entry in the op registry
// (lib/ops/op_list.h) and calls its factory with a NodeView.  The factory
// reads and validates the attributes once and returns a Kernel: a callable
// that the executor then runs on every Run() with a KernelContext.
//
// A kernel resizes its outputs itself (Tensor::Resize keeps the previous
// run's allocation when it fits) and reports bad input as InvalidArgument;
// the executor prefixes every error with the node's name and op.
//
// Subgraphs (If's branches, Loop's and Scan's body) are compiled by the
// node's factory through NodeView::CompileSubgraph into a Subgraph: a nested
// plan of its own.  A subgraph reads the values of enclosing graphs by name;
// the executor resolves those names when it compiles the node, and passes
// their values to the kernel as implicit inputs after the node's own (see
// KernelContext::inputs), so their buffers stay alive and the node is
// ordered after their producers like any other reader.
#ifndef QAT_LIB_EXEC_KERNEL_H_
#define QAT_LIB_EXEC_KERNEL_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "onnx/onnx_pb.h"
#include "qat/executor.h"
#include "qat/tensor.h"
#include "qat/thread_pool.h"

namespace qat {
namespace exec {

// A compiled subgraph.  Run() is not reentrant: the kernel that owns it
// runs it (the executor serializes runs).
class Subgraph {
 public:
  virtual ~Subgraph() = default;
  // The subgraph's formal inputs and outputs, in declaration order.
  virtual int num_inputs() const = 0;
  virtual int num_outputs() const = 0;
  virtual const std::string& output_name(int i) const = 0;

  // Runs the subgraph once.  `inputs` holds one tensor per formal input,
  // read in place; `outer` is the node's implicit inputs (the kernel
  // context's inputs from index NodeView::num_inputs() on).  Output i is
  // swapped into (*outputs)[i] (resized to num_outputs()), whose previous
  // tensor becomes the subgraph's buffer for the next run, so a loop that
  // passes the same vector allocates nothing after its first iteration.
  virtual absl::Status Run(absl::Span<const Tensor* const> inputs,
                           absl::Span<const Tensor* const> outer, ThreadPool* pool,
                           uint64_t seed, std::vector<Tensor>* outputs) = 0;
};

// Compiles a node's graph attributes; provided by the executor.
class SubgraphCompiler {
 public:
  virtual ~SubgraphCompiler() = default;
  virtual absl::StatusOr<std::unique_ptr<Subgraph>> Compile(
      const onnx::GraphProto& graph) const = 0;
};

// A node as its factory sees it: the NodeProto, the opset of its domain, and
// typed attribute getters.
class NodeView {
 public:
  NodeView(const onnx::NodeProto& proto, int64_t opset,
           const SubgraphCompiler* compiler = nullptr)
      : proto_(proto), opset_(opset), compiler_(compiler) {}

  const onnx::NodeProto& proto() const { return proto_; }
  const std::string& op_type() const { return proto_.op_type(); }
  int64_t opset() const { return opset_; }

  // Inputs and outputs given with an empty name are absent.
  int num_inputs() const { return proto_.input_size(); }
  int num_outputs() const { return proto_.output_size(); }
  bool has_input(int i) const {
    return i < proto_.input_size() && !proto_.input(i).empty();
  }
  bool has_output(int i) const {
    return i < proto_.output_size() && !proto_.output(i).empty();
  }

  bool HasAttr(const std::string& name) const { return Find(name) != nullptr; }
  int64_t GetInt(const std::string& name, int64_t fallback) const;
  float GetFloat(const std::string& name, float fallback) const;
  std::string GetString(const std::string& name, const std::string& fallback) const;
  std::vector<int64_t> GetInts(const std::string& name) const;
  std::vector<float> GetFloats(const std::string& name) const;
  const onnx::AttributeProto* Find(const std::string& name) const;

  // Compiles the graph attribute `name`; InvalidArgument when it is missing
  // or not a graph.  Only during the factory call.
  absl::StatusOr<std::unique_ptr<Subgraph>> CompileSubgraph(const std::string& name) const;

 private:
  const onnx::NodeProto& proto_;
  int64_t opset_;
  const SubgraphCompiler* compiler_;
};

// What a kernel sees when it runs.
struct KernelContext {
  // nullptr for an absent optional input.  A node with graph attributes
  // gets, after its own inputs, the outer-scope values its subgraphs read.
  std::vector<const Tensor*> inputs;
  // input_constant[i]: input i is an initializer, the same tensor at the same
  // address on every run of this executor (kernels may cache work on it).
  std::vector<bool> input_constant;
  // Never nullptr, and at least one: an output the node does not name gets
  // a scratch tensor, and has_output() says whether it was asked for.
  std::vector<Tensor*> outputs;
  std::vector<bool> output_requested;
  ThreadPool* pool = nullptr;
  uint64_t seed = 0;  // for random ops: depends on the options' seed, the node and the run
  // ExecutorOptions::batch_reducer of the main graph; nullptr in one
  // process and in subgraphs.
  const BatchReducer* batch_reducer = nullptr;

  // takeable[i]: input i's buffer when this node is its last reader (a node
  // output that no graph output, no later node and no other input of this
  // node reads), else nullptr.  A kernel may move it into an output instead
  // of copying (ForwardInput); empty when nothing is takeable.
  std::vector<Tensor*> takeable;
  // ForwardInput records each pair of buffers it swaps here (when set), so
  // that the executor can give every buffer its own memory back after the
  // run: swapped for good, buffers planned for different sizes would pass
  // their memory around from run to run, and each would grow to the
  // largest of them.
  std::vector<std::pair<Tensor*, Tensor*>>* forwarded = nullptr;

  int num_inputs() const { return static_cast<int>(inputs.size()); }
  Tensor* takeable_input(int i) const {
    return i < static_cast<int>(takeable.size()) ? takeable[i] : nullptr;
  }
  bool has_input(int i) const { return i < num_inputs() && inputs[i] != nullptr; }
  const Tensor& input(int i) const { return *inputs[i]; }
  bool is_constant(int i) const {
    return i < static_cast<int>(input_constant.size()) && input_constant[i];
  }
  bool has_output(int i) const {
    return i < static_cast<int>(outputs.size()) && output_requested[i];
  }
  // An output past the node's last one (a trailing optional output it
  // leaves out) is a scratch tensor too, so a kernel may always write it.
  Tensor& output(int i) {
    while (i >= static_cast<int>(outputs.size())) {
      spare_outputs.emplace_back();
      outputs.push_back(&spare_outputs.back());
      output_requested.push_back(false);
    }
    return *outputs[i];
  }
  std::deque<Tensor> spare_outputs;  // deque: growing keeps references valid
};

// Output `o` = input `i` under `shape` (its element count): the input's
// buffer moves into the output when the node is its last reader, otherwise
// the elements are copied.  Reshape, Flatten, Squeeze, Unsqueeze, Identity.
void ForwardInput(KernelContext& ctx, int i, std::vector<int64_t> shape, int o = 0);

// SplitMix64: a cheap, well-mixed 64-bit hash, for deriving seeds and for
// counter-based random numbers (the same value for the same counter on every
// thread layout).
inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

using Kernel = std::function<absl::Status(KernelContext&)>;
using KernelFactory = absl::StatusOr<Kernel> (*)(const NodeView&);

}  // namespace exec
}  // namespace qat

#endif  // QAT_LIB_EXEC_KERNEL_H_
