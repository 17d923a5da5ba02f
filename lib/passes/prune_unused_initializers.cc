#include "passes/prune_unused_initializers.h"

#include <string>
#include <string_view>
#include <unordered_set>

namespace qat {
namespace passes {

bool PruneUnusedInitializers(onnx::GraphProto* graph) {
  // Views of the names in the graph, which outlive the sets: no copies.
  std::unordered_set<std::string_view> used;
  used.reserve(static_cast<size_t>(graph->node_size()) * 3);
  for (const auto& n : graph->node()) used.insert(n.input().begin(), n.input().end());
  for (const auto& o : graph->output()) used.insert(o.name());
  std::unordered_set<std::string> removed;
  for (const auto& t : graph->initializer()) {
    if (used.count(t.name()) == 0) removed.insert(t.name());
  }
  if (removed.empty()) return false;
  google::protobuf::RepeatedPtrField<onnx::TensorProto> kept;
  for (auto& t : *graph->mutable_initializer()) {
    if (used.count(t.name()) != 0) kept.Add()->Swap(&t);
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
