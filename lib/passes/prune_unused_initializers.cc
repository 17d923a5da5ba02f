#include "passes/prune_unused_initializers.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "graph/graph_index.h"

namespace qat {
namespace passes {

bool PruneUnusedInitializers(onnx::GraphProto* graph) {
  // The initializers' names, sorted, marked as the nodes and outputs read
  // them: views into the graph and one flag each, no allocation per name.
  std::vector<std::string_view> names;
  names.reserve(graph->initializer_size());
  for (const auto& t : graph->initializer()) names.push_back(t.name());
  std::sort(names.begin(), names.end());
  std::vector<char> used(names.size(), 0);
  auto mark = [&](std::string_view v) {
    auto it = std::lower_bound(names.begin(), names.end(), v);
    for (; it != names.end() && *it == v; ++it) used[it - names.begin()] = 1;
  };
  for (const auto& n : graph->node()) {
    for (const auto& i : n.input()) mark(i);
    // An initializer read only inside If's branches or Loop's body is used.
    graph::ForEachSubgraphRead(n, [&](const std::string& v) { mark(v); });
  }
  for (const auto& o : graph->output()) mark(o.name());
  std::unordered_set<std::string> removed;
  for (size_t k = 0; k < names.size(); ++k) {
    if (!used[k]) removed.emplace(names[k]);
  }
  if (removed.empty()) return false;
  google::protobuf::RepeatedPtrField<onnx::TensorProto> kept;
  for (auto& t : *graph->mutable_initializer()) {
    if (removed.count(t.name()) == 0) kept.Add()->Swap(&t);
  }
  graph->mutable_initializer()->Swap(&kept);
  // Older models also list initializers as graph inputs: drop those too.
  google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> inputs;
  for (auto& in : *graph->mutable_input()) {
    if (removed.count(in.name()) == 0) inputs.Add()->Swap(&in);
  }
  graph->mutable_input()->Swap(&inputs);
  return true;
}

absl::StatusOr<bool> PruneUnusedInitializersPass::RunImpl(onnx::ModelProto* model) {
  return PruneUnusedInitializers(model->mutable_graph());
}

}  // namespace passes
}  // namespace qat
