#include "passes/node_selection.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "graph/graph_index.h"

namespace qat {
namespace quantization {
namespace {

bool Contains(const absl::flat_hash_set<std::string>& set, const std::string& v) {
  return set.count(v) != 0;
}

}  // namespace

absl::StatusOr<NodeSelection> NodeSelection::Create(
    const onnx::GraphProto& graph, std::vector<std::string> op_types,
    std::vector<std::string> include_nodes, std::vector<std::string> exclude_nodes) {
  std::set<std::string> names;
  for (const auto& n : graph.node()) names.insert(n.name());
  for (const auto* list : {&include_nodes, &exclude_nodes}) {
    for (const std::string& name : *list) {
      if (names.count(name) == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("node '", name, "' named in the options is not in the model"));
      }
    }
  }
  NodeSelection s;
  s.op_types_.insert(op_types.begin(), op_types.end());
  s.include_.insert(include_nodes.begin(), include_nodes.end());
  s.exclude_.insert(exclude_nodes.begin(), exclude_nodes.end());
  return s;
}

bool NodeSelection::Selects(const onnx::NodeProto& n) const {
  const bool default_domain = n.domain().empty() || n.domain() == "ai.onnx";
  return default_domain && Contains(op_types_, n.op_type()) &&
         !Contains(exclude_, n.name()) && (include_.empty() || Contains(include_, n.name()));
}

NodeSelection::Tensors NodeSelection::Collect(const onnx::GraphProto& graph) const {
  const graph::GraphIndex index(graph);
  absl::flat_hash_set<std::string> seen;
  Tensors out;
  auto add = [&](const std::string& name) {
    if (name.empty() || !seen.insert(name).second) return;
    (index.IsInitializer(name) ? out.weights : out.activations).push_back(name);
  };
  for (const auto& n : graph.node()) {
    if (!Selects(n)) continue;
    for (int i = 0; i < std::min(kDataInputs, n.input_size()); ++i) add(n.input(i));
    if (n.output_size() > 0) add(Output(index, n));
  }
  return out;
}

std::string NodeSelection::Output(const graph::GraphIndex& index, const onnx::NodeProto& node) {
  if (node.output_size() == 0) return "";
  const std::string& y = node.output(0);
  if (node.op_type() != "Conv" || index.NumUses(y) != 1 || index.IsGraphOutput(y)) return y;
  const std::vector<int>& readers = index.Consumers(y);
  if (readers.size() != 1) return y;
  const onnx::NodeProto& bn = index.graph().node(readers[0]);
  if (bn.op_type() != "BatchNormalization" || bn.input(0) != y || bn.output_size() == 0) return y;
  // Training mode: training_mode = 1 (opset 14 on), or the running
  // statistics' outputs named (before).
  bool training = false, attribute = false;
  for (const auto& a : bn.attribute()) {
    if (a.name() == "training_mode") {
      attribute = true;
      training = a.i() != 0;
    }
  }
  for (int i = 1; !attribute && i < bn.output_size(); ++i) training |= !bn.output(i).empty();
  return training ? bn.output(0) : y;
}

}  // namespace quantization
}  // namespace qat
