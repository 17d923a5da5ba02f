#include "stages/evaluate_folded_weights.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/model_internal.h"
#include "core/onnx_tensor.h"
#include "graph/graph_editor.h"
#include "graph/rearrange.h"
#include "passes/fold_batch_norm_qat.h"
#include "passes/prune_unused_initializers.h"
#include "qat/executor.h"
#include "qat/status_macros.h"

namespace qat {

absl::Status EvaluateFoldedWeights(onnx::ModelProto* model) {
  onnx::GraphProto* graph = model->mutable_graph();
  std::vector<int> folds, kept;
  std::set<std::string> produced;
  for (int k = 0; k < graph->node_size(); ++k) {
    if (absl::StartsWith(graph->node(k).name(), passes::kBatchNormFoldPrefix)) {
      folds.push_back(k);
      produced.insert(graph->node(k).output().begin(), graph->node(k).output().end());
    } else {
      kept.push_back(k);
    }
  }
  if (folds.empty()) return absl::OkStatus();
  std::set<std::string> inputs;
  for (const auto& in : graph->input()) inputs.insert(in.name());
  std::map<std::string, const onnx::TensorProto*> initializers;
  for (const auto& t : graph->initializer()) {
    if (inputs.count(t.name()) == 0) initializers[t.name()] = &t;
  }
  // The fold nodes alone, over the initializers they read, returning what
  // the rest of the graph reads of theirs.
  onnx::ModelProto sub;
  sub.set_ir_version(model->ir_version());
  *sub.mutable_opset_import() = model->opset_import();
  onnx::GraphProto* g = sub.mutable_graph();
  g->set_name("folded_weights");
  std::set<std::string> copied;
  for (int k : folds) {
    const onnx::NodeProto& n = graph->node(k);
    for (const auto& in : n.input()) {
      if (in.empty() || produced.count(in) != 0) continue;
      auto it = initializers.find(in);
      if (it == initializers.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            training::DescribeNode(n), " folds a BatchNormalization but reads '", in,
            "', which is not a constant of the model"));
      }
      if (copied.insert(in).second) *g->add_initializer() = *it->second;
    }
    *g->add_node() = n;
  }
  std::set<std::string> wanted;
  for (int k : kept) {
    for (const auto& in : graph->node(k).input()) {
      if (produced.count(in) != 0) wanted.insert(in);
    }
  }
  for (const auto& o : graph->output()) {
    if (produced.count(o.name()) != 0) wanted.insert(o.name());
  }
  for (const std::string& name : wanted) {
    onnx::ValueInfoProto* v = g->add_output();
    v->set_name(name);
    v->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  }
  ModelLoadOptions unchecked;  // libqat's own nodes over its own constants
  unchecked.check = false;
  unchecked.infer_shapes = false;
  QAT_ASSIGN_OR_RETURN(Model folded, ModelAccess::FromProto(std::move(sub), "folded weights",
                                                            unchecked));
  ExecutorOptions one_thread;
  one_thread.num_threads = 1;
  QAT_ASSIGN_OR_RETURN(std::unique_ptr<Executor> executor, Executor::Create(folded, one_thread));
  std::map<std::string, Tensor> values;
  QAT_RETURN_IF_ERROR(executor->Run({}, &values));
  graph::Rearrange(graph->mutable_node(), kept);
  for (const std::string& name : wanted) {
    *graph->add_initializer() = TensorToProto(values.at(name), name);
  }
  passes::PruneUnusedInitializers(graph);
  return absl::OkStatus();
}

}  // namespace qat
