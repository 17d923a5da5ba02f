#include "passes/opset21_downgrade.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "graph/graph_editor.h"
#include "graph/graph_index.h"
#include "passes/opset_upgrade.h"
#include "qat/status_macros.h"

namespace qat {
namespace passes {
namespace {

using training::DescribeNode;

bool HasAttr(const onnx::NodeProto& node, const std::string& name) {
  for (const auto& a : node.attribute()) {
    if (a.name() == name) return true;
  }
  return false;
}

void RemoveAttr(onnx::NodeProto* node, const std::string& name) {
  auto* attrs = node->mutable_attribute();
  for (int i = attrs->size() - 1; i >= 0; --i) {
    if (attrs->Get(i).name() == name) attrs->DeleteSubrange(i, 1);
  }
}

// Removes `name` when it holds `value` (the opset-17 meaning); true when
// the attribute is absent afterwards.
bool DropIfDefault(onnx::NodeProto* node, const std::string& name, int64_t value) {
  if (!HasAttr(*node, name)) return true;
  if (training::GetAttrInt(*node, name, value) != value) return false;
  RemoveAttr(node, name);
  return true;
}

// Float8 (17-20) and 4-bit (21, 22) types came after opset 17.
bool NewerThanOpset17Type(int32_t type) { return type > onnx::TensorProto::BFLOAT16; }

// Why `node` has no opset-17 form, or "" when it has one.  Reads only.
std::string Refusal(const onnx::NodeProto& node, const graph::GraphIndex& index) {
  const std::string& op = node.op_type();
  if (op == "If" || op == "Loop" || op == "Scan") return "its subgraphs are not rewritten";
  if (op == "GridSample" || op == "DFT" || op == "GroupNormalization") {
    return "its opset-21 form differs from opset 17's";
  }
  if (ReduceAxesBecameInputAt18(op)) {
    if (node.input_size() > 1 && !node.input(1).empty() && !index.IsConstant(node.input(1))) {
      return absl::StrCat("its axes '", node.input(1), "' are computed at run time");
    }
    if (training::GetAttrInt(node, "noop_with_empty_axes", 0) != 0) {
      return "noop_with_empty_axes 1 has no opset-17 form";
    }
  }
  if (op == "Pad" && node.input_size() > 3 && !node.input(3).empty()) return "it has an axes input";
  if ((op == "ScatterElements" || op == "ScatterND") &&
      (training::GetAttrString(node, "reduction", "none") == "max" ||
       training::GetAttrString(node, "reduction", "none") == "min")) {
    return "reduction max/min arrived at opset 18";
  }
  if (op == "Resize" && (HasAttr(node, "antialias") || HasAttr(node, "axes") ||
                         HasAttr(node, "keep_aspect_ratio_policy"))) {
    return "it uses Resize's opset-18 attributes";
  }
  if (op == "AveragePool") {
    for (int64_t d : training::GetAttrInts(node, "dilations")) {
      if (d != 1) return "dilations arrived at opset 19";
    }
  }
  if (op == "QuantizeLinear" || op == "DequantizeLinear") {
    if (training::GetAttrInt(node, "block_size", 0) != 0) return "it is block-wise";
    if (HasAttr(node, "output_dtype")) return "output_dtype arrived at opset 21";
  }
  return "";
}

}  // namespace

absl::StatusOr<bool> Opset21DowngradePass::RunImpl(onnx::ModelProto* model) {
  if (DefaultOpset(*model) != kInt4ExportOpset) return false;
  onnx::GraphProto* graph = model->mutable_graph();
  for (const auto& t : graph->initializer()) {
    if (NewerThanOpset17Type(t.data_type())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "initializer '", t.name(), "' has type ", t.data_type(),
          ", which opset 17 does not have"));
    }
  }
  // Everything is checked before anything changes, so a refused model is
  // left as it was.
  std::vector<std::vector<int64_t>> axes(graph->node_size());
  {
    const graph::GraphIndex index(*graph);
    for (int i = 0; i < graph->node_size(); ++i) {
      const onnx::NodeProto& node = graph->node(i);
      if (!(node.domain().empty() || node.domain() == "ai.onnx")) continue;
      const std::string why = Refusal(node, index);
      if (!why.empty()) {
        return absl::FailedPreconditionError(
            absl::StrCat(DescribeNode(node), " stays at opset 21: ", why));
      }
      if (ReduceAxesBecameInputAt18(node.op_type()) && node.input_size() > 1 &&
          !node.input(1).empty()) {
        QAT_ASSIGN_OR_RETURN(Tensor t, index.ConstantValue(node.input(1)));
        if (t.dtype() != DataType::kInt64) {
          return absl::InvalidArgumentError(absl::StrCat(
              DescribeNode(node), ": axes '", node.input(1), "' are not int64"));
        }
        const int64_t* v = t.data<int64_t>();
        axes[i].assign(v, v + t.num_elements());
      }
    }
  }
  std::set<std::string> axes_inputs;
  for (int i = 0; i < graph->node_size(); ++i) {
    onnx::NodeProto* node = graph->mutable_node(i);
    if (!(node->domain().empty() || node->domain() == "ai.onnx")) continue;
    const std::string& op = node->op_type();
    if (ReduceAxesBecameInputAt18(op)) {
      RemoveAttr(node, "noop_with_empty_axes");
      if (node->input_size() > 1) {
        if (!node->input(1).empty()) axes_inputs.insert(node->input(1));
        node->mutable_input()->DeleteSubrange(1, node->input_size() - 1);
        *node->add_attribute() = training::AttrInts("axes", axes[i]);
      }
    } else if (op == "Split") {
      RemoveAttr(node, "num_outputs");
    } else if (op == "AveragePool") {
      RemoveAttr(node, "dilations");  // all 1 (Refusal)
    } else if (op == "Cast") {
      DropIfDefault(node, "saturate", 1);  // only float8 targets read it
    } else if (op == "QuantizeLinear" || op == "DequantizeLinear") {
      RemoveAttr(node, "block_size");  // 0 (Refusal)
      DropIfDefault(node, "saturate", 1);
    }
  }
  // The axes constants that nothing reads any more go.
  const graph::GraphIndex index(*graph);
  auto* inits = graph->mutable_initializer();
  for (int i = inits->size() - 1; i >= 0; --i) {
    const std::string& name = inits->Get(i).name();
    if (axes_inputs.count(name) != 0 && index.NumUses(name) == 0 && !index.IsGraphOutput(name)) {
      inits->DeleteSubrange(i, 1);
    }
  }
  training::SetDefaultOpsetVersion(model, kDowngradeTargetOpset);
  model->set_ir_version(8);
  return true;
}

}  // namespace passes
}  // namespace qat
