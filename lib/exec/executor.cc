#include "qat/executor.h"

#include <algorithm>
#include <deque>
#include <exception>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "exec/kernel.h"
#include "core/catch_exceptions.h"
#include "core/model_internal.h"
#include "core/onnx_tensor.h"
#include "exec/ops/registry.h"
#include "qat/status_macros.h"
#include "qat/thread_pool.h"

namespace qat {
namespace {

// Where a value lives during a run.
enum class SlotKind { kGraphInput, kInitializer, kNodeOutput };

struct Slot {
  std::string name;
  SlotKind kind = SlotKind::kNodeOutput;
  int index = -1;  // into graph inputs, constants or buffers
};

struct Step {
  std::string description;  // "node 'conv1' (Conv)"
  exec::Kernel kernel;
  std::vector<int> inputs;   // slot ids, -1 for absent optional inputs
  std::vector<int> outputs;  // slot ids, -1 for absent optional outputs
  // Stand-ins for outputs the node does not name (at least one output).
  std::vector<Tensor> scratch;
  bool random = false;  // draws random numbers (Dropout in training mode...)
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

}  // namespace

struct Executor::Plan {
  ExecutorOptions options;
  std::unique_ptr<ThreadPool> pool;
  std::vector<ValueInfo> inputs;
  std::vector<ValueInfo> outputs;
  std::vector<Slot> slots;
  std::vector<int> input_slots;   // slot id of each graph input
  std::vector<int> output_slots;  // slot id of each graph output
  std::vector<Tensor> constants;  // initializers
  std::vector<Tensor> buffers;    // node outputs, kept across runs and shared
                                  // by values whose lifetimes do not overlap
  std::vector<Step> steps;        // in topological order
  uint64_t run_count = 0;
  std::mutex mutex;

  void FoldConstantSteps();
  void AssignBuffers();
};

// Runs, once, every step whose inputs are all constants and that draws no
// random numbers, and makes its outputs constants: DequantizeLinear of int8
// weights, a Constant node, or a Transpose of weights then costs nothing
// per run (and the GEMM sees the result as constant, so it keeps it
// packed).  A step that fails here is kept, so that its error surfaces from
// Run() as it would without folding.
void Executor::Plan::FoldConstantSteps() {
  std::vector<Step> kept;
  for (Step& step : steps) {
    bool foldable = !step.random;
    for (int id : step.inputs) {
      foldable = foldable && (id < 0 || slots[id].kind == SlotKind::kInitializer);
    }
    std::vector<Tensor> values(step.outputs.size());
    if (foldable) {
      exec::KernelContext ctx;
      ctx.pool = pool.get();
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

// Gives every node output a buffer, sharing buffers between values whose
// lifetimes do not overlap: a value's buffer is free again once the last
// step that reads it has run (graph outputs keep theirs).  A step's outputs
// are placed before its inputs are released, so no kernel ever writes into
// a buffer it is reading.
void Executor::Plan::AssignBuffers() {
  Plan& plan = *this;
  std::vector<int> last_use(plan.slots.size(), -1);
  for (size_t s = 0; s < plan.steps.size(); ++s) {
    for (int id : plan.steps[s].inputs) {
      if (id >= 0) last_use[id] = static_cast<int>(s);
    }
  }
  std::vector<bool> keep(plan.slots.size(), false);
  for (int id : plan.output_slots) keep[id] = true;
  std::vector<int> free_buffers;
  int num_buffers = 0;
  auto release = [&](int id) {
    Slot& slot = plan.slots[id];
    if (slot.kind != SlotKind::kNodeOutput || keep[id]) return;
    keep[id] = true;  // release once, even if read twice by the last step
    free_buffers.push_back(slot.index);
  };
  for (size_t s = 0; s < plan.steps.size(); ++s) {
    const Step& step = plan.steps[s];
    for (int id : step.outputs) {
      if (id < 0) continue;
      if (free_buffers.empty()) {
        plan.slots[id].index = num_buffers++;
      } else {
        plan.slots[id].index = free_buffers.back();
        free_buffers.pop_back();
      }
    }
    for (int id : step.inputs) {
      if (id >= 0 && last_use[id] == static_cast<int>(s)) release(id);
    }
    for (int id : step.outputs) {
      if (id >= 0 && last_use[id] < 0) release(id);  // never read
    }
  }
  plan.buffers.resize(static_cast<size_t>(num_buffers));
}

Executor::Executor(std::unique_ptr<Plan> plan) : plan_(std::move(plan)) {}
Executor::~Executor() = default;

const std::vector<ValueInfo>& Executor::inputs() const { return plan_->inputs; }
const std::vector<ValueInfo>& Executor::outputs() const { return plan_->outputs; }
int Executor::num_threads() const { return plan_->pool->num_threads(); }

absl::StatusOr<std::unique_ptr<Executor>> Executor::Create(
    const Model& model, const ExecutorOptions& options) {
  const onnx::ModelProto& proto = ModelAccess::Proto(model);
  const onnx::GraphProto& graph = proto.graph();
  auto plan = std::make_unique<Plan>();
  plan->options = options;
  QAT_RETURN_IF_ERROR(CheckThreadCount(options.num_threads, "num_threads"));

  std::unordered_map<std::string, int> slot_of;
  auto add_slot = [&](const std::string& name, SlotKind kind, int index) {
    slot_of[name] = static_cast<int>(plan->slots.size());
    plan->slots.push_back({name, kind, index});
  };

  // Initializers first: a graph input with an initializer is a constant.
  for (const auto& init : graph.initializer()) {
    auto tensor = TensorFromProto(init);
    if (!tensor.ok()) {
      return absl::Status(tensor.status().code(),
                          absl::StrCat("initializer of '", model.source(),
                                       "': ", tensor.status().message()));
    }
    add_slot(init.name(), SlotKind::kInitializer,
             static_cast<int>(plan->constants.size()));
    plan->constants.push_back(*std::move(tensor));
  }
  plan->inputs = model.inputs();
  for (const ValueInfo& input : plan->inputs) {
    if (input.dtype == DataType::kUndefined) {
      return absl::UnimplementedError(absl::StrCat(
          "graph input '", input.name, "' of '", model.source(),
          "' does not have a supported tensor type"));
    }
    add_slot(input.name, SlotKind::kGraphInput,
             static_cast<int>(plan->input_slots.size()));
    plan->input_slots.push_back(slot_of[input.name]);
  }

  // Which node produces each value; a value produced twice is an error.
  const int num_nodes = graph.node_size();
  std::unordered_map<std::string, int> producer;
  for (int n = 0; n < num_nodes; ++n) {
    for (const std::string& out : graph.node(n).output()) {
      if (out.empty()) continue;
      if (slot_of.count(out) > 0 || !producer.emplace(out, n).second) {
        return absl::InvalidArgumentError(absl::StrCat(
            Describe(graph.node(n), n), " in '", model.source(),
            "' writes '", out, "', which is already defined elsewhere"));
      }
    }
  }

  // Kahn's algorithm, taking ready nodes in file order so the plan is stable.
  std::vector<int> pending(num_nodes, 0);
  std::vector<std::vector<int>> consumers(num_nodes);
  for (int n = 0; n < num_nodes; ++n) {
    for (const std::string& in : graph.node(n).input()) {
      if (in.empty() || slot_of.count(in) > 0) continue;
      auto it = producer.find(in);
      if (it == producer.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            Describe(graph.node(n), n), " in '", model.source(), "' reads '",
            in, "', which is not a graph input, an initializer or any "
            "node's output"));
      }
      ++pending[n];
      consumers[it->second].push_back(n);
    }
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
        "the graph of '", model.source(), "' has a cycle through ",
        absl::StrJoin(stuck, ", ")));
  }

  // Bind a kernel to every node.
  for (int n : order) {
    const onnx::NodeProto& node = graph.node(n);
    const std::string description = Describe(node, n);
    const std::string& domain = node.domain();
    const int64_t opset = model.OpsetVersion(domain);
    const exec::OpEntry* entry = exec::FindOp(domain, node.op_type(), opset);
    if (entry == nullptr) {
      return absl::UnimplementedError(absl::StrCat(
          "op '", node.op_type(), "' (domain '",
          domain.empty() ? "ai.onnx" : domain, "', opset ", opset, ") of ",
          description, " in '", model.source(), "' is not supported"));
    }
    auto kernel = entry->factory(exec::NodeView(node, opset));
    if (!kernel.ok()) {
      return absl::Status(kernel.status().code(),
                          absl::StrCat(description, " in '", model.source(),
                                       "': ", kernel.status().message()));
    }
    Step step;
    step.description = description;
    step.kernel = *std::move(kernel);
    // Producers come first in `order`, so every named input has a slot.
    for (const std::string& in : node.input()) {
      step.inputs.push_back(in.empty() ? -1 : slot_of.at(in));
    }
    for (const std::string& out : node.output()) {
      if (out.empty()) {
        step.outputs.push_back(-1);
        continue;
      }
      add_slot(out, SlotKind::kNodeOutput, -1);  // buffer assigned below
      step.outputs.push_back(slot_of[out]);
    }
    step.scratch.resize(std::max<size_t>(1, step.outputs.size()));
    step.random = IsRandomOp(node.op_type());
    plan->steps.push_back(std::move(step));
  }

  plan->outputs = model.outputs();
  for (const ValueInfo& output : plan->outputs) {
    auto it = slot_of.find(output.name);
    if (it == slot_of.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "graph output '", output.name, "' of '", model.source(),
          "' is not produced by any node"));
    }
    plan->output_slots.push_back(it->second);
  }
  QAT_ASSIGN_OR_RETURN(plan->pool, ThreadPool::Create(options.num_threads));
  plan->FoldConstantSteps();
  plan->AssignBuffers();
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

  auto read = [&](int slot_id) -> const Tensor* {
    const Slot& slot = plan.slots[slot_id];
    switch (slot.kind) {
      case SlotKind::kGraphInput: return given[slot.index];
      case SlotKind::kInitializer: return &plan.constants[slot.index];
      case SlotKind::kNodeOutput: return &plan.buffers[slot.index];
    }
    return nullptr;
  };

  const uint64_t run_seed = exec::SplitMix64(plan.options.seed ^ exec::SplitMix64(plan.run_count++));
  exec::KernelContext ctx;
  ctx.pool = plan.pool.get();
  size_t s = 0;
  try {
    for (; s < plan.steps.size(); ++s) {
      Step& step = plan.steps[s];
      ctx.inputs.clear();
      ctx.input_constant.clear();
      ctx.outputs.clear();
      ctx.output_requested.clear();
      for (int id : step.inputs) {
        ctx.inputs.push_back(id < 0 ? nullptr : read(id));
        ctx.input_constant.push_back(id >= 0 &&
                                     plan.slots[id].kind == SlotKind::kInitializer);
      }
      for (size_t o = 0; o < step.scratch.size(); ++o) {
        const int id = o < step.outputs.size() ? step.outputs[o] : -1;
        // Node outputs always live in the plan's buffers.
        ctx.outputs.push_back(id < 0 ? &step.scratch[o]
                                     : &plan.buffers[plan.slots[id].index]);
        ctx.output_requested.push_back(id >= 0);
      }
      ctx.seed = exec::SplitMix64(run_seed + s);
      absl::Status status = step.kernel(ctx);
      if (!status.ok()) {
        return absl::Status(status.code(), absl::StrCat(step.description, ": ",
                                                        status.message()));
      }
    }
  } catch (const std::exception&) {
    // Allocation (a shape too large for memory) and Tensor's checks (a
    // shape whose size does not fit, qat/tensor.h) are what can throw here.
    return StatusFromCurrentException(plan.steps[s].description);
  }

  // Graph outputs that are node outputs own their buffers (AssignBuffers
  // never shares them), so they can be swapped out; inputs, initializers and
  // a value named by two outputs are copied.
  std::vector<const Tensor*> swapped_into(plan.slots.size(), nullptr);
  for (size_t i = 0; i < plan.outputs.size(); ++i) {
    const int id = plan.output_slots[i];
    Tensor& out = (*outputs)[plan.outputs[i].name];
    if (swapped_into[id] != nullptr) {
      out = *swapped_into[id];
    } else if (plan.slots[id].kind == SlotKind::kNodeOutput) {
      std::swap(out, plan.buffers[plan.slots[id].index]);
      swapped_into[id] = &out;
    } else {
      out = *read(id);
    }
  }
  return absl::OkStatus();
}

}  // namespace qat
