#include "graph/graph_index.h"

#include "absl/strings/str_cat.h"
#include "core/onnx_tensor.h"

namespace qat {
namespace graph {

bool HasSubgraph(const onnx::NodeProto& node) {
  for (const auto& a : node.attribute()) {
    if (a.has_g() || a.graphs_size() > 0) return true;
  }
  return false;
}

namespace {

void ForEachGraphRead(const onnx::GraphProto& graph,
                      const std::function<void(const std::string&)>& read) {
  for (const auto& n : graph.node()) {
    for (const auto& i : n.input()) {
      if (!i.empty()) read(i);
    }
    if (HasSubgraph(n)) ForEachSubgraphRead(n, read);
  }
  for (const auto& o : graph.output()) read(o.name());
}

}  // namespace

void ForEachSubgraphRead(const onnx::NodeProto& node,
                         const std::function<void(const std::string&)>& read) {
  for (const auto& a : node.attribute()) {
    if (a.has_g()) ForEachGraphRead(a.g(), read);
    for (const auto& g : a.graphs()) ForEachGraphRead(g, read);
  }
}

GraphIndex::GraphIndex(const onnx::GraphProto& graph) : graph_(&graph) {}

void GraphIndex::IndexValues() const {
  if (values_) return;
  values_ = true;
  initializers_.reserve(graph_->initializer_size());
  for (const auto& t : graph_->initializer()) initializers_[t.name()] = &t;
  for (const auto& n : graph_->node()) {
    const bool default_domain = n.domain().empty() || n.domain() == "ai.onnx";
    if (!default_domain || n.op_type() != "Constant" || n.output_size() != 1) continue;
    for (const auto& a : n.attribute()) {
      if (a.name() == "value" && a.has_t()) constant_nodes_[n.output(0)] = &a.t();
    }
  }
}

void GraphIndex::IndexDeclarations() const {
  if (declarations_) return;
  declarations_ = true;
  for (const auto& in : graph_->input()) inputs_.insert(in.name());
  for (const auto& out : graph_->output()) outputs_.insert(out.name());
}

void GraphIndex::IndexProducers() const {
  if (producers_) return;
  producers_ = true;
  producer_.reserve(graph_->node_size());
  for (int k = 0; k < graph_->node_size(); ++k) {
    for (const auto& o : graph_->node(k).output()) {
      if (!o.empty()) producer_[o] = k;
    }
  }
}

void GraphIndex::IndexUses() const {
  if (uses_indexed_) return;
  uses_indexed_ = true;
  uses_.reserve(graph_->node_size());
  for (const auto& out : graph_->output()) ++uses_[out.name()];
  for (const auto& n : graph_->node()) {
    for (const auto& i : n.input()) ++uses_[i];
    if (!HasSubgraph(n)) continue;
    absl::flat_hash_set<std::string> seen;  // one use per node and name
    ForEachSubgraphRead(n, [&](const std::string& name) {
      if (seen.insert(name).second) ++uses_[name];
    });
  }
}

void GraphIndex::IndexConsumers() const {
  if (consumers_) return;
  consumers_ = true;
  for (int k = 0; k < graph_->node_size(); ++k) {
    auto add = [&](const std::string& i) {
      if (i.empty()) return;
      std::vector<int>& readers = consumer_[i];
      if (readers.empty() || readers.back() != k) readers.push_back(k);
    };
    for (const auto& i : graph_->node(k).input()) add(i);
    if (HasSubgraph(graph_->node(k))) ForEachSubgraphRead(graph_->node(k), add);
  }
}

const onnx::TensorProto* GraphIndex::FindInitializer(const std::string& name) const {
  IndexValues();
  auto it = initializers_.find(name);
  return it == initializers_.end() ? nullptr : it->second;
}

bool GraphIndex::IsGraphInput(const std::string& name) const {
  IndexDeclarations();
  return inputs_.count(name) != 0;
}

bool GraphIndex::IsGraphOutput(const std::string& name) const {
  IndexDeclarations();
  return outputs_.count(name) != 0;
}

const onnx::TensorProto* GraphIndex::ConstantProto(const std::string& name) const {
  IndexValues();
  // A Constant node's value wins over an initializer of the same name (an
  // invalid graph either way).
  if (auto it = constant_nodes_.find(name); it != constant_nodes_.end()) return it->second;
  const onnx::TensorProto* init = FindInitializer(name);
  return init != nullptr && !IsGraphInput(name) ? init : nullptr;
}

absl::StatusOr<Tensor> GraphIndex::ConstantValue(const std::string& name) const {
  const onnx::TensorProto* proto = ConstantProto(name);
  if (proto == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("'", name, "' is not a constant"));
  }
  return TensorFromProto(*proto);
}

int GraphIndex::Producer(const std::string& name) const {
  IndexProducers();
  auto it = producer_.find(name);
  return it == producer_.end() ? -1 : it->second;
}

const std::vector<int>& GraphIndex::Consumers(const std::string& name) const {
  static const std::vector<int>* const kNone = new std::vector<int>();
  IndexConsumers();
  auto it = consumer_.find(name);
  return it == consumer_.end() ? *kNone : it->second;
}

int GraphIndex::NumUses(const std::string& name) const {
  IndexUses();
  auto it = uses_.find(name);
  return it == uses_.end() ? 0 : it->second;
}

}  // namespace graph
}  // namespace qat
