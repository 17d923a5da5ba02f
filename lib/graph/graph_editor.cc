#include "graph/graph_editor.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/onnx_tensor.h"
#include "graph/graph_index.h"
#include "graph/rearrange.h"
#include "qat/tensor.h"

namespace qat {
namespace training {
namespace {

ValueShape ShapeFromType(const onnx::TypeProto& type) {
  ValueShape s;
  if (!type.has_tensor_type()) return s;
  const auto& t = type.tensor_type();
  s.elem_type = t.elem_type();
  if (!t.has_shape()) return s;
  s.rank_known = true;
  bool named = false;
  for (const auto& d : t.shape().dim()) {
    s.dims.push_back(d.has_dim_value() ? d.dim_value() : -1);
    named |= d.has_dim_param() && !d.dim_param().empty();
  }
  if (named) {
    for (const auto& d : t.shape().dim()) {
      s.symbols.push_back(d.has_dim_param() ? d.dim_param() : "");
    }
  }
  return s;
}

void FillType(const ValueShape& shape, onnx::ValueInfoProto* info) {
  auto* t = info->mutable_type()->mutable_tensor_type();
  t->set_elem_type(shape.elem_type);
  if (!shape.rank_known) return;
  auto* s = t->mutable_shape();
  for (int64_t d : shape.dims) {
    auto* dim = s->add_dim();
    if (d >= 0) dim->set_dim_value(d);
  }
}

}  // namespace

bool ValueShape::fully_known() const {
  if (!rank_known) return false;
  for (int64_t d : dims) {
    if (d < 0) return false;
  }
  return true;
}

GraphEditor::GraphEditor(onnx::ModelProto* model)
    : model_(model), graph_(model->mutable_graph()) {
  for (const auto& op : model->opset_import()) {
    if (op.domain().empty() || op.domain() == "ai.onnx") opset_ = op.version();
  }
  used_.reserve(2 * static_cast<size_t>(graph_->node_size() + graph_->initializer_size()));
  for (const auto& v : graph_->input()) Reserve(v.name());
  for (const auto& v : graph_->output()) Reserve(v.name());
  for (const auto& v : graph_->value_info()) Reserve(v.name());
  for (const auto& t : graph_->initializer()) Reserve(t.name());
  for (const auto& n : graph_->node()) {
    Reserve(n.name());
    for (const auto& o : n.output()) Reserve(o);
    for (const auto& i : n.input()) Reserve(i);
  }
}

void GraphEditor::Reserve(const std::string& name) {
  if (!name.empty()) used_.insert(name);
}

void GraphEditor::EnsureOpset(const std::string& domain, int64_t version) {
  for (const auto& op : model_->opset_import()) {
    if (op.domain() == domain) return;
  }
  auto* op = model_->add_opset_import();
  op->set_domain(domain);
  op->set_version(version);
}

absl::Status GraphEditor::RaiseOpset(int64_t version) {
  if (opset_ >= version) return absl::OkStatus();
  if (opset_ < 13) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the backward graph needs ONNX opset ", version, ", and the model imports opset ",
        opset_, ": raising it from below 13 would change the meaning of its nodes; "
        "upgrade the model to opset 13 first"));
  }
  // Values read by a node or a graph output.
  absl::flat_hash_set<std::string> read;
  for (const auto& n : graph_->node()) read.insert(n.input().begin(), n.input().end());
  for (const auto& o : graph_->output()) read.insert(o.name());
  for (auto& n : *graph_->mutable_node()) {
    const bool standard = n.domain().empty() || n.domain() == "ai.onnx";
    if (!standard || n.op_type() != "BatchNormalization" || opset_ >= 14) continue;
    bool training = false;
    for (int i = 1; i < n.output_size(); ++i) training |= !n.output(i).empty();
    for (int i = 3; i < n.output_size(); ++i) {
      if (!n.output(i).empty() && read.count(n.output(i)) != 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the backward graph needs ONNX opset ", version, ", which has no output '",
            n.output(i), "' of ", DescribeNode(n), " (saved_mean and saved_var)"));
      }
    }
    while (n.output_size() > 3) n.mutable_output()->RemoveLast();
    if (training) *n.add_attribute() = AttrInt("training_mode", 1);
  }
  SetDefaultOpsetVersion(model_, version);
  if (model_->ir_version() < 8) model_->set_ir_version(8);
  opset_ = version;
  return absl::OkStatus();
}

std::string GraphEditor::FreshName(const std::string& hint) {
  std::string name = hint;
  if (used_.count(name) != 0) {
    // Names are only ever taken, never freed: the suffixes tried before for
    // this hint are still taken, so the search resumes where it stopped.
    int& k = next_suffix_[hint];
    if (k == 0) k = 1;
    name = absl::StrCat(hint, "_", k);
    while (used_.count(name) != 0) name = absl::StrCat(hint, "_", ++k);
  }
  used_.insert(name);
  return name;
}

onnx::NodeProto& GraphEditor::AddNode(const std::string& op,
                                      const std::string& domain,
                                      std::vector<std::string> inputs,
                                      std::vector<std::string> outputs,
                                      std::vector<onnx::AttributeProto> attrs) {
  onnx::NodeProto* node = graph_->add_node();
  node->set_op_type(op);
  if (!domain.empty()) node->set_domain(domain);
  node->set_name(FreshName(outputs.empty() ? op : outputs[0] + "_node"));
  for (auto& i : inputs) node->add_input(std::move(i));
  for (auto& o : outputs) {
    Reserve(o);
    node->add_output(std::move(o));
  }
  for (auto& a : attrs) *node->add_attribute() = std::move(a);
  return *node;
}

std::string GraphEditor::Add(const std::string& op,
                             std::vector<std::string> inputs,
                             const std::string& hint,
                             std::vector<onnx::AttributeProto> attrs) {
  std::string out = FreshName(hint);
  AddNode(op, "", std::move(inputs), {out}, std::move(attrs));
  return out;
}

std::string GraphEditor::Initializer(onnx::TensorProto tensor) {
  const std::string name = FreshName(tensor.name().empty() ? "const" : tensor.name());
  tensor.set_name(name);
  MoveTensorProto(std::move(tensor), graph_->add_initializer());  // ShapeOf finds it there
  return name;
}

std::string GraphEditor::ConstantFloat(float value, const std::string& hint) {
  return Initializer(MakeFloatTensor(hint, {}, {value}));
}

std::string GraphEditor::ConstantInt64s(const std::vector<int64_t>& values,
                                        const std::string& hint) {
  onnx::TensorProto t;
  t.set_name(hint);
  t.set_data_type(onnx::TensorProto::INT64);
  t.add_dims(static_cast<int64_t>(values.size()));
  for (int64_t v : values) t.add_int64_data(v);
  return Initializer(t);
}

std::string GraphEditor::ReduceSum(const std::string& x,
                                   const std::vector<int64_t>& axes,
                                   bool keepdims, const std::string& hint) {
  // ReduceSum takes its axes as an input from opset 13 on.
  if (opset_ >= 13) {
    std::vector<std::string> inputs = {x};
    if (!axes.empty()) inputs.push_back(ConstantInt64s(axes, hint + "_axes"));
    return Add("ReduceSum", inputs, hint, {AttrInt("keepdims", keepdims)});
  }
  std::vector<onnx::AttributeProto> attrs = {AttrInt("keepdims", keepdims)};
  if (!axes.empty()) attrs.push_back(AttrInts("axes", axes));
  return Add("ReduceSum", {x}, hint, attrs);
}

std::string GraphEditor::ReduceMean(const std::string& x,
                                    const std::vector<int64_t>& axes,
                                    bool keepdims, const std::string& hint) {
  // ReduceMean keeps `axes` as an attribute up to opset 17.
  std::vector<onnx::AttributeProto> attrs = {AttrInt("keepdims", keepdims)};
  if (!axes.empty()) attrs.push_back(AttrInts("axes", axes));
  return Add("ReduceMean", {x}, hint, attrs);
}

std::string GraphEditor::Unsqueeze(const std::string& x,
                                   const std::vector<int64_t>& axes,
                                   const std::string& hint) {
  if (opset_ >= 13) {
    return Add("Unsqueeze", {x, ConstantInt64s(axes, hint + "_axes")}, hint);
  }
  return Add("Unsqueeze", {x}, hint, {AttrInts("axes", axes)});
}

std::string GraphEditor::Reshape(const std::string& x, const std::string& shape,
                                 const std::string& hint) {
  return Add("Reshape", {x, shape}, hint);
}

std::string GraphEditor::Transpose(const std::string& x,
                                   const std::vector<int64_t>& perm,
                                   const std::string& hint) {
  return Add("Transpose", {x}, hint, {AttrInts("perm", perm)});
}

std::string GraphEditor::Slice(const std::string& x, const std::vector<int64_t>& starts,
                               const std::vector<int64_t>& ends,
                               const std::vector<int64_t>& axes, const std::string& hint) {
  return Add("Slice",
             {x, ConstantInt64s(starts, hint + "_starts"), ConstantInt64s(ends, hint + "_ends"),
              ConstantInt64s(axes, hint + "_axes")},
             hint);
}

template <typename List>
int GraphEditor::Find(const List& list, ListIndex* index, const std::string& name) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (list.size() < index->indexed) *index = ListIndex();  // the list was cut
    for (; index->indexed < list.size(); ++index->indexed) {
      index->position.emplace(list.Get(index->indexed).name(), index->indexed);
    }
    auto it = index->position.find(name);
    if (it == index->position.end()) return -1;
    if (list.Get(it->second).name() == name) return it->second;
    *index = ListIndex();  // rewritten since: index it again
  }
  return -1;
}

const onnx::TensorProto* GraphEditor::FindInitializer(const std::string& name) const {
  const int k = Find(graph_->initializer(), &initializers_, name);
  return k < 0 ? nullptr : &graph_->initializer(k);
}

const onnx::TensorProto* GraphEditor::FindConstant(const std::string& name) const {
  if (const onnx::TensorProto* t = FindInitializer(name)) return t;
  auto is_constant = [](const onnx::NodeProto& n) {
    return n.op_type() == "Constant" && n.output_size() == 1;
  };
  const auto& nodes = graph_->node();
  for (int attempt = 0; attempt < 2; ++attempt) {
    ListIndex& index = constant_nodes_;
    if (nodes.size() < index.indexed) index = ListIndex();
    for (; index.indexed < nodes.size(); ++index.indexed) {
      const onnx::NodeProto& n = nodes.Get(index.indexed);
      if (is_constant(n)) index.position.emplace(n.output(0), index.indexed);
    }
    auto it = index.position.find(name);
    if (it == index.position.end()) return nullptr;
    const onnx::NodeProto& n = nodes.Get(it->second);
    if (is_constant(n) && n.output(0) == name) {
      for (const auto& a : n.attribute()) {
        if (a.name() == "value") return &a.t();
      }
      return nullptr;
    }
    index = ListIndex();  // rewritten since: index it again
  }
  return nullptr;
}

std::optional<ValueShape> GraphEditor::ShapeOf(const std::string& name) const {
  if (auto it = shapes_.find(name); it != shapes_.end()) return it->second;
  for (auto [list, index] : {std::pair{&graph_->input(), &inputs_},
                             std::pair{&graph_->output(), &outputs_},
                             std::pair{&graph_->value_info(), &value_info_}}) {
    if (const int k = Find(*list, index, name); k >= 0) {
      return ShapeFromType(list->Get(k).type());
    }
  }
  if (const onnx::TensorProto* t = FindInitializer(name)) {
    ValueShape s;
    s.elem_type = t->data_type();
    s.rank_known = true;
    s.dims.assign(t->dims().begin(), t->dims().end());
    return s;
  }
  return std::nullopt;
}

std::optional<std::vector<int64_t>> GraphEditor::ConstantInts(const std::string& name) const {
  const onnx::TensorProto* proto = name.empty() ? nullptr : FindConstant(name);
  if (proto == nullptr) return std::nullopt;
  absl::StatusOr<Tensor> t = TensorFromProto(*proto);
  if (!t.ok()) return std::nullopt;
  if (t->dtype() == DataType::kInt64) {
    return std::vector<int64_t>(t->values<int64_t>().begin(), t->values<int64_t>().end());
  }
  if (t->dtype() == DataType::kInt32) {
    return std::vector<int64_t>(t->values<int32_t>().begin(), t->values<int32_t>().end());
  }
  return std::nullopt;
}

void GraphEditor::SetShape(const std::string& name, const ValueShape& shape) {
  shapes_[name] = shape;
}

void GraphEditor::DeclareValueShape(const std::string& name, const ValueShape& shape) {
  const int k = Find(graph_->value_info(), &value_info_, name);
  onnx::ValueInfoProto* info =
      k >= 0 ? graph_->mutable_value_info(k) : graph_->add_value_info();
  info->set_name(name);
  info->clear_type();
  FillType(shape, info);
  shapes_[name] = shape;
}

void GraphEditor::AddOutput(const std::string& name, const ValueShape& shape) {
  onnx::ValueInfoProto* out = graph_->add_output();
  out->set_name(name);
  FillType(shape, out);
}

void GraphEditor::ClearOutputs() {
  graph_->clear_output();
  outputs_ = ListIndex();
}

void GraphEditor::AddInput(const std::string& name, const ValueShape& shape) {
  Reserve(name);
  onnx::ValueInfoProto* in = graph_->add_input();
  in->set_name(name);
  FillType(shape, in);
  shapes_[name] = shape;
}

onnx::AttributeProto AttrInt(const std::string& name, int64_t value) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INT);
  a.set_i(value);
  return a;
}

onnx::AttributeProto AttrFloat(const std::string& name, float value) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::FLOAT);
  a.set_f(value);
  return a;
}

onnx::AttributeProto AttrInts(const std::string& name,
                              const std::vector<int64_t>& values) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) a.add_ints(v);
  return a;
}

onnx::AttributeProto AttrString(const std::string& name,
                                const std::string& value) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::STRING);
  a.set_s(value);
  return a;
}

onnx::AttributeProto AttrTensor(const std::string& name,
                                const onnx::TensorProto& value) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::TENSOR);
  *a.mutable_t() = value;
  return a;
}

namespace {
const onnx::AttributeProto* FindAttr(const onnx::NodeProto& node,
                                     const std::string& name) {
  for (const auto& a : node.attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}
}  // namespace

int64_t GetAttrInt(const onnx::NodeProto& node, const std::string& name,
                   int64_t fallback) {
  const auto* a = FindAttr(node, name);
  return a == nullptr ? fallback : a->i();
}

float GetAttrFloat(const onnx::NodeProto& node, const std::string& name,
                   float fallback) {
  const auto* a = FindAttr(node, name);
  return a == nullptr ? fallback : a->f();
}

std::vector<int64_t> GetAttrInts(const onnx::NodeProto& node,
                                 const std::string& name,
                                 std::vector<int64_t> fallback) {
  const auto* a = FindAttr(node, name);
  if (a == nullptr) return fallback;
  return {a->ints().begin(), a->ints().end()};
}

std::string GetAttrString(const onnx::NodeProto& node, const std::string& name,
                          std::string fallback) {
  const auto* a = FindAttr(node, name);
  return a == nullptr ? fallback : a->s();
}

onnx::TensorProto MakeFloatTensor(const std::string& name,
                                  const std::vector<int64_t>& dims,
                                  const std::vector<float>& values) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t.add_dims(d);
  t.set_raw_data(std::string(reinterpret_cast<const char*>(values.data()),
                             values.size() * sizeof(float)));
  return t;
}

std::vector<int64_t> SlicePositions(int64_t size, int64_t start, int64_t end, int64_t step) {
  auto clamp = [&](int64_t v, bool is_end) {
    if (v < 0) v = v < -size ? (step > 0 || !is_end ? 0 : -1) : v + size;
    return step > 0 ? std::min(v, size) : std::min(v, size - 1);
  };
  std::vector<int64_t> positions;
  const int64_t begin = clamp(start, false), stop = clamp(end, true);
  for (int64_t p = begin; step > 0 ? p < stop : p > stop; p += step) positions.push_back(p);
  return positions;
}

absl::Status TopologicalSort(onnx::GraphProto* graph) {
  const int n = graph->node_size();
  const graph::GraphIndex index(*graph);
  // The edges producer -> reader, grouped by producer (CSR: no allocation
  // per node).
  std::vector<std::pair<int, int>> edges;
  for (int k = 0; k < n; ++k) {
    for (const auto& in : graph->node(k).input()) {
      const int j = index.Producer(in);
      if (j >= 0 && j != k) edges.emplace_back(j, k);
    }
  }
  std::vector<int> waiting(n, 0), first(n + 1, 0), readers(edges.size());
  for (const auto& [j, k] : edges) {
    ++first[j + 1];
    ++waiting[k];
  }
  for (int j = 0; j < n; ++j) first[j + 1] += first[j];
  {
    std::vector<int> next(first.begin(), first.end() - 1);
    for (const auto& [j, k] : edges) readers[next[j]++] = k;
  }
  // The order is that of repeated sweeps over the pending nodes, each
  // emitting, in the current order, every node whose producers are emitted
  // (stable).  A node goes in the first sweep after those of its producers,
  // or in the same sweep as a producer that comes before it:
  //   sweep(k) = max over producers j of sweep(j) + (j > k ? 1 : 0).
  // Kahn's algorithm gives the sweeps; sorting by (sweep, position) gives
  // the order, without sweeping n times.
  std::vector<int> sweep(n, 0), ready;
  for (int k = 0; k < n; ++k) {
    if (waiting[k] == 0) ready.push_back(k);
  }
  int placed = 0;
  while (!ready.empty()) {
    const int j = ready.back();
    ready.pop_back();
    ++placed;
    for (int e = first[j]; e < first[j + 1]; ++e) {
      const int k = readers[e];
      sweep[k] = std::max(sweep[k], sweep[j] + (j > k ? 1 : 0));
      if (--waiting[k] == 0) ready.push_back(k);
    }
  }
  if (placed < n) {
    for (int k = 0; k < n; ++k) {
      if (waiting[k] > 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the graph has a cycle through ", DescribeNode(graph->node(k))));
      }
    }
  }
  std::vector<int> order(n);
  for (int k = 0; k < n; ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return sweep[a] < sweep[b]; });
  bool unchanged = true;
  for (int k = 0; k < n; ++k) unchanged &= order[k] == k;
  if (unchanged) return absl::OkStatus();
  graph::Rearrange(graph->mutable_node(), order);
  return absl::OkStatus();
}

bool IsDefaultDomain(const onnx::NodeProto& node) {
  return node.domain().empty() || node.domain() == "ai.onnx";
}

bool IsDefaultOp(const onnx::NodeProto& node, const char* op_type) {
  return node.op_type() == op_type && IsDefaultDomain(node);
}

void SetDefaultOpsetVersion(onnx::ModelProto* model, int64_t version) {
  for (auto& op : *model->mutable_opset_import()) {
    if (op.domain().empty() || op.domain() == "ai.onnx") op.set_version(version);
  }
}

std::string DescribeNode(const onnx::NodeProto& node) {
  return absl::StrCat("node '", node.name(), "' (",
                      node.domain().empty() ? "" : node.domain() + ".",
                      node.op_type(), ")");
}

}  // namespace training
}  // namespace qat
