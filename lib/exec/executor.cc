#include "qat/executor.h"

#include <algorithm>
#include <deque>
#include <exception>
#include <mutex>
#include <functional>
#include <limits>
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "exec/kernel.h"
#include "core/catch_exceptions.h"
#include "core/model_internal.h"
#include "core/onnx_tensor.h"
#include "exec/ops/conv_activation.h"
#include "exec/ops/registry.h"
#include "qat/status_macros.h"
#include "qat/thread_pool.h"

namespace qat {
namespace {

// Where a value lives during a run: a formal input of the graph, an
// initializer (or folded constant), a node output, or (in a subgraph) a value
// of an enclosing graph, passed in by the node that owns the subgraph.
enum class SlotKind { kGraphInput, kInitializer, kNodeOutput, kOuter };

struct Slot {
  std::string name;
  SlotKind kind = SlotKind::kNodeOutput;
  int index = -1;  // into graph inputs, constants, buffers or outer values
};

struct Step {
  std::string description;  // "node 'conv1' (Conv)"
  exec::Kernel kernel;
  // Slot ids, -1 for absent optional inputs; after the node's own inputs,
  // the outer-scope values its subgraphs read (its implicit inputs).
  std::vector<int> inputs;
  std::vector<int> outputs;  // slot ids, -1 for absent optional outputs
  // Stand-ins for outputs the node does not name (at least one output).
  std::vector<Tensor> scratch;
  bool random = false;  // draws random numbers (Dropout in training mode...)
  // Per input: this step is the last reader of that node output (no graph
  // output, later step or other input of this step reads it), so the
  // kernel may take its buffer (KernelContext::takeable).  Set by
  // AssignBuffers; empty when none is.
  std::vector<bool> takeable;
  int node = -1;        // index of the node in its graph
  int64_t opset = 0;    // of the node's domain
};

// Ops whose result depends on the run's seed: never folded into constants.
bool IsRandomOp(const std::string& op_type) {
  return op_type == "Dropout" || op_type == "RandomNormal" || op_type == "RandomUniform" ||
         op_type == "RandomNormalLike" || op_type == "RandomUniformLike" ||
         op_type == "Bernoulli" || op_type == "Multinomial";
}

std::string Describe(const onnx::NodeProto& node, int index) {
  const std::string name =
      node.name().empty() ? absl::StrCat("#", index) : node.name();
  const std::string domain = node.domain().empty() ? "" : node.domain() + ".";
  return absl::StrCat("node '", name, "' (", domain, node.op_type(), ")");
}

absl::Status CheckInput(const ValueInfo& info, const Tensor& tensor) {
  if (info.dtype != DataType::kUndefined && tensor.dtype() != info.dtype) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", info.name, "' must be ", DataTypeName(info.dtype), ", got ",
        DataTypeName(tensor.dtype())));
  }
  if (!info.has_shape) return absl::OkStatus();
  bool ok = tensor.rank() == static_cast<int64_t>(info.shape.size());
  for (size_t i = 0; ok && i < info.shape.size(); ++i) {
    ok = info.shape[i] < 0 || info.shape[i] == tensor.shape()[i];
  }
  if (!ok) {
    std::vector<std::string> dims;
    for (int64_t d : info.shape) dims.push_back(d < 0 ? "?" : absl::StrCat(d));
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", info.name, "' must have shape [", absl::StrJoin(dims, ","),
        "], got ", ShapeToString(tensor.shape())));
  }
  return absl::OkStatus();
}

bool HasGraphAttribute(const onnx::NodeProto& node) {
  for (const auto& a : node.attribute()) {
    if (a.has_g() || a.graphs_size() > 0) return true;
  }
  return false;
}

// A random op, or a node whose subgraphs hold one: never folded.
bool DrawsRandomNumbers(const onnx::NodeProto& node) {
  if (IsRandomOp(node.op_type())) return true;
  if (!HasGraphAttribute(node)) return false;
  auto any = [](const onnx::GraphProto& g) {
    for (const auto& n : g.node()) {
      if (DrawsRandomNumbers(n)) return true;
    }
    return false;
  };
  for (const auto& a : node.attribute()) {
    if (a.has_g() && any(a.g())) return true;
    for (const auto& g : a.graphs()) {
      if (any(g)) return true;
    }
  }
  return false;
}

void AddOuterNames(const onnx::GraphProto& graph, std::vector<std::string>* names,
                   std::unordered_set<std::string>* seen);

// Appends, once each and in order of first use, the names that the graph
// attributes of `node` read from enclosing scopes.
void AddImplicitInputs(const onnx::NodeProto& node, std::vector<std::string>* names,
                       std::unordered_set<std::string>* seen) {
  for (const auto& a : node.attribute()) {
    if (a.has_g()) AddOuterNames(a.g(), names, seen);
    for (const auto& g : a.graphs()) AddOuterNames(g, names, seen);
  }
}

// The names `graph` reads (in its nodes, its nested subgraphs and its
// outputs) and does not define itself: its free variables.
void AddOuterNames(const onnx::GraphProto& graph, std::vector<std::string>* names,
                   std::unordered_set<std::string>* seen) {
  std::unordered_set<std::string> defined;
  for (const auto& v : graph.input()) defined.insert(v.name());
  for (const auto& t : graph.initializer()) defined.insert(t.name());
  for (const auto& n : graph.node()) {
    for (const auto& o : n.output()) defined.insert(o);
  }
  auto use = [&](const std::string& name) {
    if (!name.empty() && defined.count(name) == 0 && seen->insert(name).second) {
      names->push_back(name);
    }
  };
  for (const auto& n : graph.node()) {
    for (const auto& i : n.input()) use(i);
    if (!HasGraphAttribute(n)) continue;
    std::vector<std::string> inner;
    std::unordered_set<std::string> inner_seen;
    AddImplicitInputs(n, &inner, &inner_seen);
    for (const auto& name : inner) use(name);
  }
  for (const auto& v : graph.output()) use(v.name());
}

using OpsetOf = std::function<int64_t(const std::string& domain)>;

// A compiled graph: the model's main graph, or a subgraph with its own plan.
struct GraphPlan {
  std::vector<Slot> slots;
  std::vector<int> input_slots;   // slot id of each formal input
  std::vector<int> output_slots;  // slot id of each graph output
  std::vector<std::string> output_names;
  std::vector<Tensor> constants;  // initializers
  std::vector<Tensor> buffers;    // node outputs, kept across runs and shared
                                  // by values whose lifetimes do not overlap
  std::vector<Step> steps;        // in topological order
  const BatchReducer* batch_reducer = nullptr;  // the main graph's, if set

  // Per slot: the last step that reads it (-1: none), and whether it keeps
  // its buffer to the end of a run (a graph output).  Set by AssignBuffers.
  std::vector<int> last_use;
  std::vector<bool> kept;
  // Per slot: the most bytes the value has needed in a run so far, and the
  // bytes the current buffer assignment was planned for.
  std::vector<size_t> value_bytes;
  std::vector<size_t> planned_bytes;
  // Until the sizes are known the buffers are assigned without them, and a
  // run frees each value's memory after its last reader; after a run that
  // measured a value larger than planned, SizeBuffers plans again.
  bool sized = false;
  bool resize_pending = false;
  // The buffers ForwardInput swapped in this run (KernelContext::forwarded).
  std::vector<std::pair<Tensor*, Tensor*>> forwarded;

  // Undoes this run's swaps, latest first: each buffer holds its own memory
  // again (the graph outputs were handed out before), so that a buffer's
  // memory only ever grows to what its own values need.
  void ReturnForwardedMemory() {
    for (auto it = forwarded.rbegin(); it != forwarded.rend(); ++it) {
      std::swap(*it->first, *it->second);
    }
    forwarded.clear();
  }

  void FoldConstantSteps(ThreadPool* pool);
  absl::Status FuseConvActivations(const onnx::GraphProto& graph);
  void AssignBuffers();
  void SizeBuffers();
  // Calls fn(id) for each value that dies at step `s`: a node output, not
  // a graph output, whose last reader is `s` (once per input that reads
  // it), or an output of `s` that nothing reads.
  template <typename F>
  void ForEachValueDyingAt(int s, F&& fn) const {
    for (int id : steps[s].inputs) {
      if (id >= 0 && last_use[id] == s && slots[id].kind == SlotKind::kNodeOutput && !kept[id]) {
        fn(id);
      }
    }
    for (int id : steps[s].outputs) {
      if (id >= 0 && last_use[id] < 0 && !kept[id]) fn(id);
    }
  }

  const Tensor* Read(int slot_id, const Tensor* const* given,
                     const Tensor* const* outer) const {
    const Slot& slot = slots[slot_id];
    switch (slot.kind) {
      case SlotKind::kGraphInput: return given[slot.index];
      case SlotKind::kInitializer: return &constants[slot.index];
      case SlotKind::kNodeOutput: return &buffers[slot.index];
      case SlotKind::kOuter: return outer[slot.index];
    }
    return nullptr;
  }
  // Runs every step; step s draws its seed from SplitMix64(seed + s).
  absl::Status RunSteps(const Tensor* const* given, const Tensor* const* outer,
                        ThreadPool* pool, uint64_t seed);
  // Hands output i to out(i): node outputs own their buffers (AssignBuffers
  // never shares them), so they are swapped out; inputs, initializers, outer
  // values and a value named by two outputs are copied.
  template <typename Out>
  void TakeOutputs(const Tensor* const* given, const Tensor* const* outer, Out&& out);
};

// Compiles `graph`.  `formal_inputs` are the values a caller passes to each
// run, in order (the main graph's non-initializer inputs, a subgraph's
// inputs); `outer` names the values of enclosing scopes it reads, by their
// index in the outer values of a run.
absl::StatusOr<std::unique_ptr<GraphPlan>> CompileGraph(
    const onnx::GraphProto& graph, const std::vector<std::string>& formal_inputs,
    const std::unordered_map<std::string, int>& outer, const OpsetOf& opset_of,
    const std::string& source, ThreadPool* pool, bool fuse);

// The executor's SubgraphCompiler for one node: the subgraph's outer names
// are looked up among the node's implicit inputs.
class NodeSubgraphCompiler : public exec::SubgraphCompiler {
 public:
  NodeSubgraphCompiler(const std::vector<std::string>* implicit, const OpsetOf* opset_of,
                       const std::string* source, ThreadPool* pool, bool fuse)
      : implicit_(implicit), opset_of_(opset_of), source_(source), pool_(pool), fuse_(fuse) {}

  absl::StatusOr<std::unique_ptr<exec::Subgraph>> Compile(
      const onnx::GraphProto& graph) const override;

 private:
  const std::vector<std::string>* implicit_;
  const OpsetOf* opset_of_;
  const std::string* source_;
  ThreadPool* pool_;
  bool fuse_;
};

class CompiledSubgraph : public exec::Subgraph {
 public:
  explicit CompiledSubgraph(std::unique_ptr<GraphPlan> plan) : plan_(std::move(plan)) {}
  int num_inputs() const override { return static_cast<int>(plan_->input_slots.size()); }
  int num_outputs() const override { return static_cast<int>(plan_->output_slots.size()); }
  const std::string& output_name(int i) const override { return plan_->output_names[i]; }

  absl::Status Run(absl::Span<const Tensor* const> inputs,
                   absl::Span<const Tensor* const> outer, ThreadPool* pool, uint64_t seed,
                   std::vector<Tensor>* outputs) override {
    if (static_cast<int>(inputs.size()) != num_inputs()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the subgraph takes ", num_inputs(), " inputs, got ", inputs.size()));
    }
    for (const Tensor* t : inputs) {
      if (t == nullptr) return absl::InvalidArgumentError("a subgraph input is missing");
    }
    QAT_RETURN_IF_ERROR(plan_->RunSteps(inputs.data(), outer.data(), pool, seed));
    outputs->resize(plan_->output_slots.size());
    plan_->TakeOutputs(inputs.data(), outer.data(),
                       [&](size_t i) -> Tensor& { return (*outputs)[i]; });
    return absl::OkStatus();
  }

 private:
  std::unique_ptr<GraphPlan> plan_;
};

absl::StatusOr<std::unique_ptr<exec::Subgraph>> NodeSubgraphCompiler::Compile(
    const onnx::GraphProto& graph) const {
  std::vector<std::string> names;
  std::unordered_set<std::string> seen;
  AddOuterNames(graph, &names, &seen);
  std::unordered_map<std::string, int> outer;
  for (const std::string& name : names) {
    auto it = std::find(implicit_->begin(), implicit_->end(), name);
    if (it == implicit_->end()) {  // a graph that is not one of the node's attributes
      return absl::InternalError(absl::StrCat("'", name, "' is not an implicit input"));
    }
    outer[name] = static_cast<int>(it - implicit_->begin());
  }
  std::vector<std::string> formal;
  for (const auto& v : graph.input()) formal.push_back(v.name());
  QAT_ASSIGN_OR_RETURN(auto plan,
                       CompileGraph(graph, formal, outer, *opset_of_, *source_, pool_, fuse_));
  return std::unique_ptr<exec::Subgraph>(new CompiledSubgraph(std::move(plan)));
}

}  // namespace

struct Executor::Plan {
  ExecutorOptions options;
  std::unique_ptr<ThreadPool> pool;
  std::vector<ValueInfo> inputs;
  std::vector<ValueInfo> outputs;
  std::unique_ptr<GraphPlan> graph;
  uint64_t run_count = 0;
  std::mutex mutex;
};

namespace {

// Runs, once, every step whose inputs are all constants and that draws no
// random numbers, and makes its outputs constants: DequantizeLinear of int8
// weights, a Constant node, or a Transpose of weights then costs nothing
// per run (and the GEMM sees the result as constant, so it keeps it
// packed).  A step that fails here is kept, so that its error surfaces from
// Run() as it would without folding.
void GraphPlan::FoldConstantSteps(ThreadPool* pool) {
  std::vector<Step> kept;
  for (Step& step : steps) {
    bool foldable = !step.random;
    for (int id : step.inputs) {
      foldable = foldable && (id < 0 || slots[id].kind == SlotKind::kInitializer);
    }
    std::vector<Tensor> values(step.outputs.size());
    if (foldable) {
      exec::KernelContext ctx;
      ctx.pool = pool;
      for (int id : step.inputs) {
        ctx.inputs.push_back(id < 0 ? nullptr : &constants[slots[id].index]);
        ctx.input_constant.push_back(id >= 0);
      }
      for (size_t o = 0; o < step.scratch.size(); ++o) {
        const bool named = o < step.outputs.size() && step.outputs[o] >= 0;
        ctx.outputs.push_back(named ? &values[o] : &step.scratch[o]);
        ctx.output_requested.push_back(named);
      }
      try {
        foldable = step.kernel(ctx).ok();
      } catch (const std::exception&) {
        foldable = false;  // out of memory: leave it to Run(), which reports it
      }
    }
    if (!foldable) {
      kept.push_back(std::move(step));
      continue;
    }
    for (size_t o = 0; o < step.outputs.size(); ++o) {
      if (step.outputs[o] < 0) continue;
      slots[step.outputs[o]].kind = SlotKind::kInitializer;
      slots[step.outputs[o]].index = static_cast<int>(constants.size());
      constants.push_back(std::move(values[o]));
    }
  }
  steps = std::move(kept);
}

// Fuses a Relu, or a Clip whose bounds are constants, into the Conv it
// reads when it is that Conv's only reader and the Conv's output is no graph
// output: the Conv's step writes the activation's output and the
// activation's step goes.  Runs after folding, so that computed bounds are
// constants too.  In a training graph the Relu's output stays (its gradient
// reads it), but a Conv output that backward also reads has two readers and
// is left alone.
absl::Status GraphPlan::FuseConvActivations(const onnx::GraphProto& graph) {
  std::vector<int> readers(slots.size(), 0), reader_step(slots.size(), -1);
  for (size_t s = 0; s < steps.size(); ++s) {
    for (int id : steps[s].inputs) {
      if (id < 0) continue;
      ++readers[id];
      reader_step[id] = static_cast<int>(s);
    }
  }
  for (int id : output_slots) readers[id] += 2;  // a graph output is never fused away
  std::vector<bool> fused_away(steps.size(), false);
  for (size_t s = 0; s < steps.size(); ++s) {
    Step& conv = steps[s];
    const onnx::NodeProto& node = graph.node(conv.node);
    if (node.op_type() != "Conv" || !node.domain().empty() || conv.outputs.size() != 1 ||
        conv.outputs[0] < 0 || readers[conv.outputs[0]] != 1) {
      continue;
    }
    const int c = reader_step[conv.outputs[0]];
    const Step& act_step = steps[c];
    const onnx::NodeProto& act_node = graph.node(act_step.node);
    if (!act_node.domain().empty() || act_step.inputs.empty() ||
        act_step.inputs[0] != conv.outputs[0] || act_step.outputs.size() != 1 ||
        act_step.outputs[0] < 0) {
      continue;
    }
    exec::ConvActivation act;
    if (act_node.op_type() == "Relu") {
      act.kind = exec::ConvActivation::Kind::kRelu;
    } else if (act_node.op_type() == "Clip") {
      act.kind = exec::ConvActivation::Kind::kClip;
      const exec::NodeView view(act_node, act_step.opset);
      bool constant = true;
      if (act_step.opset < 11) {
        act.has_lo = act.has_hi = true;
        act.lo = view.GetFloat("min", std::numeric_limits<float>::lowest());
        act.hi = view.GetFloat("max", std::numeric_limits<float>::max());
      }
      for (size_t i = 1; i < act_step.inputs.size() && act_step.opset >= 11; ++i) {
        const int id = act_step.inputs[i];
        if (id < 0) continue;
        const bool scalar = slots[id].kind == SlotKind::kInitializer &&
                            constants[slots[id].index].dtype() == DataType::kFloat32 &&
                            constants[slots[id].index].num_elements() == 1;
        constant = constant && scalar && i <= 2;
        if (!constant) break;
        const float v = constants[slots[id].index].data<float>()[0];
        (i == 1 ? act.has_lo : act.has_hi) = true;
        (i == 1 ? act.lo : act.hi) = v;
        act.float_tensor_bounds = true;
      }
      if (!constant) continue;
    } else {
      continue;
    }
    auto kernel = exec::MakeConvWithActivation(exec::NodeView(node, conv.opset), act);
    if (!kernel.ok()) return kernel.status();
    conv.kernel = *std::move(kernel);
    conv.description = absl::StrCat(conv.description, " fused with ", act_step.description);
    conv.outputs[0] = act_step.outputs[0];
    fused_away[c] = true;
  }
  std::vector<Step> kept;
  for (size_t s = 0; s < steps.size(); ++s) {
    if (!fused_away[s]) kept.push_back(std::move(steps[s]));
  }
  steps = std::move(kept);
  return absl::OkStatus();
}

// Gives every node output a buffer, sharing buffers between values whose
// lifetimes do not overlap: a value's buffer is free again once the last
// step that reads it has run (graph outputs keep theirs).  A step's outputs
// are placed before its inputs are released, so no kernel ever writes into
// a buffer it is reading.  The sizes are not known yet: buffers are reused
// in the order they are freed (SizeBuffers plans with sizes).
void GraphPlan::AssignBuffers() {
  last_use.assign(slots.size(), -1);
  for (size_t s = 0; s < steps.size(); ++s) {
    for (int id : steps[s].inputs) {
      if (id >= 0) last_use[id] = static_cast<int>(s);
    }
  }
  kept.assign(slots.size(), false);
  for (int id : output_slots) kept[id] = true;
  value_bytes.assign(slots.size(), 0);
  planned_bytes.assign(slots.size(), 0);
  std::vector<bool> released(slots.size(), false);
  std::vector<int> free_buffers;
  int num_buffers = 0;
  for (size_t s = 0; s < steps.size(); ++s) {
    Step& step = steps[s];
    for (int id : step.outputs) {
      if (id < 0) continue;
      if (free_buffers.empty()) {
        slots[id].index = num_buffers++;
      } else {
        slots[id].index = free_buffers.back();
        free_buffers.pop_back();
      }
    }
    step.takeable.clear();
    for (size_t k = 0; k < step.inputs.size(); ++k) {
      const int id = step.inputs[k];
      const bool last = id >= 0 && slots[id].kind == SlotKind::kNodeOutput && !kept[id] &&
                        last_use[id] == static_cast<int>(s) &&
                        std::count(step.inputs.begin(), step.inputs.end(), id) == 1;
      if (last) {
        step.takeable.resize(step.inputs.size(), false);
        step.takeable[k] = true;
      }
    }
    ForEachValueDyingAt(static_cast<int>(s), [&](int id) {
      if (released[id]) return;  // once, even if read twice by the last step
      released[id] = true;
      free_buffers.push_back(slots[id].index);
    });
  }
  buffers.resize(static_cast<size_t>(num_buffers));
}

// Plans the buffers again with the sizes the runs have measured, largest
// value first: each goes into the smallest buffer that is big enough and
// free for its whole lifetime (from the step that writes it to its last
// reader, both included), or into a new one.  Every buffer then stays as
// large as the first value placed in it, and a training step allocates
// nothing once it has run (greedy by size, as arena planners do).
void GraphPlan::SizeBuffers() {
  constexpr int kToTheEnd = std::numeric_limits<int>::max();
  std::vector<int> first(slots.size(), -1);
  std::vector<int> values;
  for (size_t s = 0; s < steps.size(); ++s) {
    for (int id : steps[s].outputs) {
      if (id < 0 || first[id] >= 0) continue;
      first[id] = static_cast<int>(s);
      values.push_back(id);
    }
  }
  auto end = [&](int id) {
    return kept[id] ? kToTheEnd : std::max(first[id], last_use[id]);
  };
  std::stable_sort(values.begin(), values.end(), [&](int a, int b) {
    return value_bytes[a] > value_bytes[b];
  });
  std::vector<std::map<int, int>> busy;  // per buffer: first step -> last step
  std::vector<size_t> capacity;
  for (int id : values) {
    const int from = first[id], to = end(id);
    int best = -1;
    for (size_t b = 0; b < busy.size(); ++b) {
      // The lifetimes in a buffer do not overlap: only the latest one that
      // starts by `to` can reach `from`.
      auto it = busy[b].upper_bound(to);
      if (it != busy[b].begin() && std::prev(it)->second >= from) continue;
      if (best < 0 || capacity[b] < capacity[best]) best = static_cast<int>(b);
    }
    if (best < 0) {
      best = static_cast<int>(busy.size());
      busy.emplace_back();
      capacity.push_back(value_bytes[id]);
    }
    busy[best][from] = to;
    slots[id].index = best;
  }
  // The old buffers go: their memory was sized for the old assignment.
  buffers = std::vector<Tensor>(busy.size());
  planned_bytes = value_bytes;
  sized = true;
}

absl::Status GraphPlan::RunSteps(const Tensor* const* given, const Tensor* const* outer,
                                 ThreadPool* pool, uint64_t seed) {
  ReturnForwardedMemory();  // a run that failed left its swaps
  if (resize_pending) {
    SizeBuffers();
    resize_pending = false;
  }
  exec::KernelContext ctx;
  ctx.forwarded = &forwarded;
  ctx.pool = pool;
  ctx.batch_reducer = batch_reducer;
  size_t s = 0;
  try {
    for (; s < steps.size(); ++s) {
      Step& step = steps[s];
      ctx.inputs.clear();
      ctx.input_constant.clear();
      ctx.takeable.clear();
      ctx.outputs.clear();
      ctx.output_requested.clear();
      for (size_t k = 0; k < step.inputs.size(); ++k) {
        const int id = step.inputs[k];
        ctx.inputs.push_back(id < 0 ? nullptr : Read(id, given, outer));
        ctx.input_constant.push_back(id >= 0 && slots[id].kind == SlotKind::kInitializer);
        if (k < step.takeable.size()) {
          ctx.takeable.push_back(step.takeable[k] ? &buffers[slots[id].index] : nullptr);
        }
      }
      for (size_t o = 0; o < step.scratch.size(); ++o) {
        const int id = o < step.outputs.size() ? step.outputs[o] : -1;
        // Node outputs always live in the plan's buffers.
        ctx.outputs.push_back(id < 0 ? &step.scratch[o] : &buffers[slots[id].index]);
        ctx.output_requested.push_back(id >= 0);
      }
      ctx.seed = exec::SplitMix64(seed + s);
      absl::Status status = step.kernel(ctx);
      if (!status.ok()) {
        return absl::Status(status.code(), absl::StrCat(step.description, ": ",
                                                        status.message()));
      }
      for (int id : step.outputs) {
        if (id < 0) continue;
        const size_t bytes = buffers[slots[id].index].num_bytes();
        value_bytes[id] = std::max(value_bytes[id], bytes);
        resize_pending = resize_pending || bytes > planned_bytes[id];
      }
      if (!sized) {  // the first run: free each value after its last reader
        ForEachValueDyingAt(static_cast<int>(s),
                            [&](int id) { buffers[slots[id].index] = Tensor(); });
      }
    }
  } catch (const std::exception&) {
    // Allocation (a shape too large for memory) and Tensor's checks (a
    // shape whose size does not fit, qat/tensor.h) are what can throw here.
    return StatusFromCurrentException(steps[s].description);
  }
  return absl::OkStatus();
}

template <typename Out>
void GraphPlan::TakeOutputs(const Tensor* const* given, const Tensor* const* outer,
                            Out&& out) {
  std::vector<const Tensor*> swapped_into(slots.size(), nullptr);
  for (size_t i = 0; i < output_slots.size(); ++i) {
    const int id = output_slots[i];
    Tensor& dest = out(i);
    if (swapped_into[id] != nullptr) {
      dest = *swapped_into[id];
    } else if (slots[id].kind == SlotKind::kNodeOutput) {
      std::swap(dest, buffers[slots[id].index]);
      swapped_into[id] = &dest;
    } else {
      dest = *Read(id, given, outer);
    }
  }
  ReturnForwardedMemory();
}

absl::StatusOr<std::unique_ptr<GraphPlan>> CompileGraph(
    const onnx::GraphProto& graph, const std::vector<std::string>& formal_inputs,
    const std::unordered_map<std::string, int>& outer, const OpsetOf& opset_of,
    const std::string& source, ThreadPool* pool, bool fuse) {
  auto plan = std::make_unique<GraphPlan>();
  std::unordered_map<std::string, int> slot_of;
  auto add_slot = [&](const std::string& name, SlotKind kind, int index) {
    slot_of[name] = static_cast<int>(plan->slots.size());
    plan->slots.push_back({name, kind, index});
  };

  // Outer values first, so that a local definition of the same name wins.
  for (const auto& [name, index] : outer) add_slot(name, SlotKind::kOuter, index);
  // Initializers next: a graph input with an initializer is a constant.
  for (const auto& init : graph.initializer()) {
    auto tensor = TensorFromProto(init);
    if (!tensor.ok()) {
      return absl::Status(tensor.status().code(),
                          absl::StrCat("initializer of '", source, "': ",
                                       tensor.status().message()));
    }
    add_slot(init.name(), SlotKind::kInitializer,
             static_cast<int>(plan->constants.size()));
    plan->constants.push_back(*std::move(tensor));
  }
  for (const std::string& input : formal_inputs) {
    add_slot(input, SlotKind::kGraphInput, static_cast<int>(plan->input_slots.size()));
    plan->input_slots.push_back(slot_of[input]);
  }

  // Which node produces each value; a value produced twice is an error.
  const int num_nodes = graph.node_size();
  std::unordered_map<std::string, int> producer;
  for (int n = 0; n < num_nodes; ++n) {
    for (const std::string& out : graph.node(n).output()) {
      if (out.empty()) continue;
      const auto defined = slot_of.find(out);
      const bool shadows_outer =
          defined != slot_of.end() && plan->slots[defined->second].kind == SlotKind::kOuter;
      if ((defined != slot_of.end() && !shadows_outer) || !producer.emplace(out, n).second) {
        return absl::InvalidArgumentError(absl::StrCat(
            Describe(graph.node(n), n), " in '", source,
            "' writes '", out, "', which is already defined elsewhere"));
      }
    }
  }

  // The values each node reads: its inputs, then its implicit inputs (the
  // outer-scope values of its subgraphs), which order it like inputs do.
  std::vector<std::vector<std::string>> implicit(num_nodes);
  for (int n = 0; n < num_nodes; ++n) {
    if (!HasGraphAttribute(graph.node(n))) continue;
    std::unordered_set<std::string> seen;
    AddImplicitInputs(graph.node(n), &implicit[n], &seen);
  }

  // Kahn's algorithm, taking ready nodes in file order so the plan is stable.
  std::vector<int> pending(num_nodes, 0);
  std::vector<std::vector<int>> consumers(num_nodes);
  for (int n = 0; n < num_nodes; ++n) {
    auto depend = [&](const std::string& in) -> absl::Status {
      if (in.empty()) return absl::OkStatus();
      auto it = producer.find(in);
      if (it == producer.end()) {
        if (slot_of.count(in) > 0) return absl::OkStatus();
        return absl::InvalidArgumentError(absl::StrCat(
            Describe(graph.node(n), n), " in '", source, "' reads '",
            in, "', which is not a graph input, an initializer or any "
            "node's output"));
      }
      ++pending[n];
      consumers[it->second].push_back(n);
      return absl::OkStatus();
    };
    for (const std::string& in : graph.node(n).input()) QAT_RETURN_IF_ERROR(depend(in));
    for (const std::string& in : implicit[n]) QAT_RETURN_IF_ERROR(depend(in));
  }
  std::deque<int> ready;
  for (int n = 0; n < num_nodes; ++n) {
    if (pending[n] == 0) ready.push_back(n);
  }
  std::vector<int> order;
  while (!ready.empty()) {
    const int n = ready.front();
    ready.pop_front();
    order.push_back(n);
    for (int c : consumers[n]) {
      if (--pending[c] == 0) ready.push_back(c);
    }
  }
  if (static_cast<int>(order.size()) != num_nodes) {
    std::vector<std::string> stuck;
    for (int n = 0; n < num_nodes; ++n) {
      if (pending[n] > 0) stuck.push_back(Describe(graph.node(n), n));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "the graph of '", source, "' has a cycle through ",
        absl::StrJoin(stuck, ", ")));
  }

  // Bind a kernel to every node.
  for (int n : order) {
    const onnx::NodeProto& node = graph.node(n);
    const std::string description = Describe(node, n);
    const std::string& domain = node.domain();
    const int64_t opset = opset_of(domain);
    const exec::OpEntry* entry = exec::FindOp(domain, node.op_type(), opset);
    if (entry == nullptr) {
      return absl::UnimplementedError(absl::StrCat(
          "op '", node.op_type(), "' (domain '",
          domain.empty() ? "ai.onnx" : domain, "', opset ", opset, ") of ",
          description, " in '", source, "' is not supported"));
    }
    NodeSubgraphCompiler compiler(&implicit[n], &opset_of, &source, pool, fuse);
    auto kernel = entry->factory(exec::NodeView(node, opset, &compiler));
    if (!kernel.ok()) {
      return absl::Status(kernel.status().code(),
                          absl::StrCat(description, " in '", source,
                                       "': ", kernel.status().message()));
    }
    Step step;
    step.description = description;
    step.kernel = *std::move(kernel);
    // Producers come first in `order`, so every named input has a slot.
    for (const std::string& in : node.input()) {
      step.inputs.push_back(in.empty() ? -1 : slot_of.at(in));
    }
    for (const std::string& in : implicit[n]) step.inputs.push_back(slot_of.at(in));
    for (const std::string& out : node.output()) {
      if (out.empty()) {
        step.outputs.push_back(-1);
        continue;
      }
      add_slot(out, SlotKind::kNodeOutput, -1);  // buffer assigned below
      step.outputs.push_back(slot_of[out]);
    }
    step.scratch.resize(std::max<size_t>(1, step.outputs.size()));
    step.random = DrawsRandomNumbers(node);
    step.node = n;
    step.opset = opset;
    plan->steps.push_back(std::move(step));
  }

  for (const auto& output : graph.output()) {
    auto it = slot_of.find(output.name());
    if (it == slot_of.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "graph output '", output.name(), "' of '", source,
          "' is not produced by any node"));
    }
    plan->output_slots.push_back(it->second);
    plan->output_names.push_back(output.name());
  }
  plan->FoldConstantSteps(pool);
  if (fuse) QAT_RETURN_IF_ERROR(plan->FuseConvActivations(graph));
  plan->AssignBuffers();
  return plan;
}

}  // namespace

Executor::Executor(std::unique_ptr<Plan> plan) : plan_(std::move(plan)) {}
Executor::~Executor() = default;

const std::vector<ValueInfo>& Executor::inputs() const { return plan_->inputs; }
const std::vector<ValueInfo>& Executor::outputs() const { return plan_->outputs; }
int Executor::num_threads() const { return plan_->pool->num_threads(); }

int64_t Executor::buffer_bytes() const {
  std::lock_guard<std::mutex> lock(plan_->mutex);
  int64_t bytes = 0;
  for (const Tensor& t : plan_->graph->buffers) bytes += static_cast<int64_t>(t.capacity_bytes());
  return bytes;
}

absl::StatusOr<std::unique_ptr<Executor>> Executor::Create(
    const Model& model, const ExecutorOptions& options) {
  const onnx::ModelProto& proto = ModelAccess::Proto(model);
  auto plan = std::make_unique<Plan>();
  plan->options = options;
  QAT_RETURN_IF_ERROR(CheckThreadCount(options.num_threads, "num_threads"));
  QAT_ASSIGN_OR_RETURN(plan->pool, ThreadPool::Create(options.num_threads));

  plan->inputs = model.inputs();
  std::vector<std::string> formal_inputs;
  for (const ValueInfo& input : plan->inputs) {
    if (input.dtype == DataType::kUndefined) {
      return absl::UnimplementedError(absl::StrCat(
          "graph input '", input.name, "' of '", model.source(),
          "' does not have a supported tensor type"));
    }
    formal_inputs.push_back(input.name);
  }
  const OpsetOf opset_of = [&model](const std::string& domain) {
    return model.OpsetVersion(domain);
  };
  // The main graph's outputs are model.outputs(), which the graph's output
  // list declares in the same order.
  QAT_ASSIGN_OR_RETURN(plan->graph, CompileGraph(proto.graph(), formal_inputs, {}, opset_of,
                                                 model.source(), plan->pool.get(),
                                                 options.fuse_conv_activations));
  if (plan->options.batch_reducer) plan->graph->batch_reducer = &plan->options.batch_reducer;
  plan->outputs = model.outputs();
  return std::unique_ptr<Executor>(new Executor(std::move(plan)));
}

absl::StatusOr<std::map<std::string, Tensor>> Executor::Run(
    const std::map<std::string, Tensor>& inputs) {
  std::map<std::string, const Tensor*> given;
  for (const auto& [name, tensor] : inputs) given[name] = &tensor;
  std::map<std::string, Tensor> result;
  QAT_RETURN_IF_ERROR(Run(given, &result));
  return result;
}

absl::Status Executor::Run(const std::map<std::string, const Tensor*>& inputs,
                           std::map<std::string, Tensor>* outputs) {
  Plan& plan = *plan_;
  std::lock_guard<std::mutex> lock(plan.mutex);

  std::vector<const Tensor*> given(plan.inputs.size(), nullptr);
  for (const auto& [name, tensor] : inputs) {
    size_t i = 0;
    while (i < plan.inputs.size() && plan.inputs[i].name != name) ++i;
    if (i == plan.inputs.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the model has no input named '", name, "'"));
    }
    if (tensor == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("input '", name, "' is null"));
    }
    QAT_RETURN_IF_ERROR(CheckInput(plan.inputs[i], *tensor));
    given[i] = tensor;
  }
  for (size_t i = 0; i < given.size(); ++i) {
    if (given[i] == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", plan.inputs[i].name, "' is missing"));
    }
  }

  const uint64_t run_seed = exec::SplitMix64(plan.options.seed ^ exec::SplitMix64(plan.run_count++));
  QAT_RETURN_IF_ERROR(plan.graph->RunSteps(given.data(), nullptr, plan.pool.get(), run_seed));
  plan.graph->TakeOutputs(given.data(), nullptr, [&](size_t i) -> Tensor& {
    return (*outputs)[plan.outputs[i].name];
  });
  return absl::OkStatus();
}

}  // namespace qat
