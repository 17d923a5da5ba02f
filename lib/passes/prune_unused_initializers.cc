#include "passes/prune_unused_initializers.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "graph/graph_index.h"
#include "graph/rearrange.h"

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
  absl::flat_hash_set<std::string> removed;
  for (size_t k = 0; k < names.size(); ++k) {
    if (!used[k]) removed.emplace(names[k]);
  }
  if (removed.empty()) return false;
  graph::KeepIf(graph->mutable_initializer(),
                [&](const onnx::TensorProto& t) { return removed.count(t.name()) == 0; });
  // Older models also list initializers as graph inputs: drop those too.
  graph::KeepIf(graph->mutable_input(),
                [&](const onnx::ValueInfoProto& in) { return removed.count(in.name()) == 0; });
  return true;
}

absl::StatusOr<bool> PruneUnusedInitializersPass::RunImpl(onnx::ModelProto* model) {
  return PruneUnusedInitializers(model->mutable_graph());
}

}  // namespace passes
}  // namespace qat
