#include "passes/opset_upgrade.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "graph/graph_editor.h"
#include "passes/promote_constants.h"
#include "qat/status_macros.h"

namespace qat {
namespace passes {
namespace {

using training::GraphEditor;

const onnx::AttributeProto* FindAttr(const onnx::NodeProto& node, const std::string& name) {
  for (const auto& a : node.attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}

void RemoveAttr(onnx::NodeProto* node, const std::string& name) {
  auto* attrs = node->mutable_attribute();
  for (int i = attrs->size() - 1; i >= 0; --i) {
    if (attrs->Get(i).name() == name) attrs->DeleteSubrange(i, 1);
  }
}

void SetAttr(onnx::NodeProto* node, onnx::AttributeProto attr) {
  RemoveAttr(node, attr.name());
  *node->add_attribute() = std::move(attr);
}

// Puts `name` at input `slot`, padding the slots before it with "".
void SetInput(onnx::NodeProto* node, int slot, const std::string& name) {
  while (node->input_size() <= slot) node->add_input("");
  node->set_input(slot, name);
}

// Drops trailing empty inputs (optional inputs that were not given).
void TrimInputs(onnx::NodeProto* node) {
  while (node->input_size() > 0 && node->input(node->input_size() - 1).empty()) {
    node->mutable_input()->RemoveLast();
  }
}

// An ints attribute that became an int64 input at `slot`.
void IntsAttrToInput(GraphEditor& editor, onnx::NodeProto* node, const std::string& attr,
                     int slot) {
  const onnx::AttributeProto* a = FindAttr(*node, attr);
  if (a == nullptr) return;
  const std::vector<int64_t> values(a->ints().begin(), a->ints().end());
  RemoveAttr(node, attr);
  SetInput(node, slot, editor.ConstantInt64s(values, absl::StrCat(node->name(), "_", attr)));
}

// A float attribute that became a scalar input at `slot`.
void FloatAttrToInput(GraphEditor& editor, onnx::NodeProto* node, const std::string& attr,
                      int slot) {
  const onnx::AttributeProto* a = FindAttr(*node, attr);
  if (a == nullptr) return;
  const float value = a->f();
  RemoveAttr(node, attr);
  SetInput(node, slot, editor.ConstantFloat(value, absl::StrCat(node->name(), "_", attr)));
}

onnx::NodeProto MakeNode(const std::string& op, std::vector<std::string> inputs,
                         std::vector<std::string> outputs, const std::string& name) {
  onnx::NodeProto n;
  n.set_op_type(op);
  n.set_name(name);
  for (auto& i : inputs) n.add_input(std::move(i));
  for (auto& o : outputs) n.add_output(std::move(o));
  return n;
}

// Ops that took `broadcast` (and `axis`) attributes before opset 7.
bool IsLegacyBroadcastOp(const std::string& op) {
  for (const char* legacy : {"Add", "Sub", "Mul", "Div", "Pow", "Gemm", "And", "Or", "Xor",
                             "Equal", "Greater", "Less"}) {
    if (op == legacy) return true;
  }
  return false;
}

class Upgrader {
 public:
  Upgrader(onnx::ModelProto* model, int64_t from) : editor_(model), from_(from) {}

  // Rewrites `node`, appending it (and any nodes it needs) to `out` in
  // topological order.
  absl::Status Upgrade(onnx::NodeProto node,
                       google::protobuf::RepeatedPtrField<onnx::NodeProto>* out) {
    if (node.name().empty()) node.set_name(editor_.FreshName(node.op_type()));
    if (from_ < 6) RemoveAttr(&node, "consumed_inputs");
    const std::string& op = node.op_type();
    if (op == "Softmax" || op == "LogSoftmax" || op == "Hardmax") return Softmax(node, out);
    if (op == "Clip" && from_ < 11) {
      // Clip-6's defaults are float's range, which the absent inputs mean too.
      FloatAttrToInput(editor_, &node, "min", 1);
      FloatAttrToInput(editor_, &node, "max", 2);
    } else if ((op == "Squeeze" || op == "Unsqueeze" || op == "ReduceSum") && from_ < 13) {
      IntsAttrToInput(editor_, &node, "axes", 1);
    } else if (op == "Split" && from_ < 13) {
      IntsAttrToInput(editor_, &node, "split", 1);
    } else if (op == "Pad" && from_ < 11) {
      IntsAttrToInput(editor_, &node, "pads", 1);
      if (from_ < 2) IntsAttrToInput(editor_, &node, "paddings", 1);
      FloatAttrToInput(editor_, &node, "value", 2);
    } else if (op == "Slice" && from_ < 10) {
      IntsAttrToInput(editor_, &node, "starts", 1);
      IntsAttrToInput(editor_, &node, "ends", 2);
      IntsAttrToInput(editor_, &node, "axes", 3);
    } else if (op == "Reshape" && from_ < 5) {
      IntsAttrToInput(editor_, &node, "shape", 1);
    } else if (op == "TopK" && from_ < 10) {
      const onnx::AttributeProto* k = FindAttr(node, "k");
      if (k != nullptr) {
        const int64_t value = k->i();
        RemoveAttr(&node, "k");
        SetInput(&node, 1, editor_.ConstantInt64s({value}, node.name() + "_k"));
      }
    } else if (op == "Dropout") {
      RemoveAttr(&node, "is_test");
      if (from_ < 12) FloatAttrToInput(editor_, &node, "ratio", 1);
    } else if (op == "Upsample" || (op == "Resize" && from_ < 11)) {
      QAT_RETURN_IF_ERROR(Resize(&node));
    } else if (op == "BatchNormalization") {
      const onnx::AttributeProto* spatial = FindAttr(node, "spatial");
      if (spatial != nullptr && spatial->i() != 1) {
        return absl::UnimplementedError(absl::StrCat(
            "BatchNormalization '", node.name(), "' has spatial=", spatial->i(),
            ", which opset 13 cannot express"));
      }
      RemoveAttr(&node, "spatial");
      RemoveAttr(&node, "is_test");
    } else if (op == "Scatter") {  // deprecated in 11: the same op, renamed
      node.set_op_type("ScatterElements");
    } else if (IsLegacyBroadcastOp(op) && from_ < 7) {
      QAT_RETURN_IF_ERROR(LegacyBroadcast(&node));
    }
    TrimInputs(&node);
    out->Add(std::move(node));
    return absl::OkStatus();
  }

 private:
  // Rule 1 of the header.
  absl::Status Softmax(onnx::NodeProto& node,
                       google::protobuf::RepeatedPtrField<onnx::NodeProto>* out) {
    if (from_ >= 13 || node.input_size() < 1 || node.output_size() < 1) {
      out->Add(std::move(node));
      return absl::OkStatus();
    }
    const onnx::AttributeProto* a = FindAttr(node, "axis");
    const int64_t axis = a != nullptr ? a->i() : 1;
    const std::optional<training::ValueShape> shape = editor_.ShapeOf(node.input(0));
    const bool rank_known = shape.has_value() && shape->rank_known;
    const int64_t rank = rank_known ? shape->rank() : -1;
    if (axis == -1 || (rank_known && (axis == rank - 1 || axis + rank == rank - 1))) {
      SetAttr(&node, training::AttrInt("axis", -1));
      out->Add(std::move(node));
      return absl::OkStatus();
    }
    if (rank_known && rank <= 1) {  // a vector (or scalar) flattens to [1, n]
      SetAttr(&node, training::AttrInt("axis", -1));
      out->Add(std::move(node));
      return absl::OkStatus();
    }
    const std::string x = node.input(0);
    const std::string y = node.output(0);
    const std::string flat = editor_.FreshName(y + "_flat");
    const std::string normalized = editor_.FreshName(y + "_2d");
    const std::string dims = editor_.FreshName(x + "_shape");
    onnx::NodeProto flatten =
        MakeNode("Flatten", {x}, {flat}, editor_.FreshName(node.name() + "_flatten"));
    *flatten.add_attribute() = training::AttrInt("axis", axis);
    out->Add(std::move(flatten));
    node.set_input(0, flat);
    node.set_output(0, normalized);
    SetAttr(&node, training::AttrInt("axis", -1));
    const std::string name = node.name();
    out->Add(std::move(node));
    out->Add(MakeNode("Shape", {x}, {dims}, editor_.FreshName(name + "_shape")));
    out->Add(MakeNode("Reshape", {normalized, dims}, {y}, editor_.FreshName(name + "_reshape")));
    return absl::OkStatus();
  }

  // Rule 3 of the header: Upsample-7/9 and Resize-10 as Resize-13.
  absl::Status Resize(onnx::NodeProto* node) {
    std::string scales;
    if (node->op_type() == "Upsample" && from_ < 9) {
      const onnx::AttributeProto* a = FindAttr(*node, "scales");
      if (a == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("Upsample '", node->name(), "' has no scales"));
      }
      std::vector<float> values(a->floats().begin(), a->floats().end());
      scales = editor_.Initializer(training::MakeFloatTensor(
          node->name() + "_scales", {static_cast<int64_t>(values.size())}, values));
      RemoveAttr(node, "scales");
    } else if (node->input_size() >= 2) {
      scales = node->input(1);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(node->op_type(), " '", node->name(),
                                                     "' has no scales input"));
    }
    const std::string mode = training::GetAttrString(*node, "mode", "nearest");
    node->set_op_type("Resize");
    const std::string x = node->input(0);
    node->clear_input();
    node->add_input(x);
    node->add_input("");  // roi
    node->add_input(scales);
    SetAttr(node, training::AttrString("coordinate_transformation_mode", "asymmetric"));
    if (mode == "nearest") SetAttr(node, training::AttrString("nearest_mode", "floor"));
    return absl::OkStatus();
  }

  // Rule 5 of the header.
  absl::Status LegacyBroadcast(onnx::NodeProto* node) {
    const bool broadcast = training::GetAttrInt(*node, "broadcast", 0) != 0;
    const onnx::AttributeProto* axis_attr = FindAttr(*node, "axis");
    std::optional<int64_t> axis;
    if (axis_attr != nullptr) axis = axis_attr->i();
    RemoveAttr(node, "broadcast");
    if (node->op_type() == "Gemm") return absl::OkStatus();
    RemoveAttr(node, "axis");
    if (!broadcast || !axis.has_value() || node->input_size() < 2) return absl::OkStatus();
    const std::optional<training::ValueShape> a = editor_.ShapeOf(node->input(0));
    const onnx::TensorProto* b = editor_.FindInitializer(node->input(1));
    if (a.has_value() && a->rank_known && b != nullptr) {
      int64_t aligned = *axis < 0 ? *axis + a->rank() : *axis;
      if (aligned + b->dims_size() == a->rank()) return absl::OkStatus();
      if (aligned >= 0 && aligned + b->dims_size() < a->rank()) {
        onnx::TensorProto reshaped = *b;
        for (int64_t k = aligned + b->dims_size(); k < a->rank(); ++k) reshaped.add_dims(1);
        reshaped.set_name(node->input(1) + "_aligned");
        node->set_input(1, editor_.Initializer(std::move(reshaped)));
        return absl::OkStatus();
      }
    }
    const std::optional<training::ValueShape> bs = editor_.ShapeOf(node->input(1));
    if (a.has_value() && a->rank_known && bs.has_value() && bs->rank_known) {
      const int64_t aligned = *axis < 0 ? *axis + a->rank() : *axis;
      if (aligned + bs->rank() == a->rank()) return absl::OkStatus();
    }
    return absl::UnimplementedError(absl::StrCat(
        node->op_type(), " '", node->name(), "' broadcasts with axis=", *axis,
        ", which opset 13 cannot express unless B is an initializer"));
  }

  GraphEditor editor_;
  int64_t from_;
};

}  // namespace

int64_t DefaultOpset(const onnx::ModelProto& model) {
  for (const auto& op : model.opset_import()) {
    if (op.domain().empty() || op.domain() == "ai.onnx") return op.version();
  }
  return 0;
}

OpsetUpgradePass& AddUpgradePasses(PassPipeline* pipeline) {
  OpsetUpgradePass& upgrade = pipeline->Add(std::make_unique<OpsetUpgradePass>());
  pipeline->Add(std::make_unique<PromoteConstantsPass>());
  return upgrade;
}

void OpsetUpgradePass::ReportWarning(const std::string& source,
                                     std::vector<std::string>* warnings) const {
  if (upgraded_from_ == 0 || warnings == nullptr) return;
  warnings->push_back(absl::StrCat("'", source, "' imports opset ", upgraded_from_,
                                   "; upgraded it to opset ", kUpgradeTargetOpset));
}

absl::StatusOr<bool> OpsetUpgradePass::RunImpl(onnx::ModelProto* model) {
  upgraded_from_ = 0;
  const int64_t from = DefaultOpset(*model);
  if (from >= kUpgradeTargetOpset || from == 0) return false;
  Upgrader upgrader(model, from);  // reserves every name in use first
  google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
  nodes.Swap(model->mutable_graph()->mutable_node());
  google::protobuf::RepeatedPtrField<onnx::NodeProto> out;
  for (auto& node : nodes) {
    const bool default_domain = node.domain().empty() || node.domain() == "ai.onnx";
    if (!default_domain) {
      out.Add(std::move(node));
      continue;
    }
    QAT_RETURN_IF_ERROR(upgrader.Upgrade(std::move(node), &out));
  }
  // Initializers the upgrader added were appended to the graph; the nodes
  // go back in their new order.
  model->mutable_graph()->mutable_node()->Swap(&out);
  training::SetDefaultOpsetVersion(model, kUpgradeTargetOpset);
  if (model->ir_version() < 7) model->set_ir_version(7);
  upgraded_from_ = from;
  return true;
}

bool ReduceAxesBecameInputAt18(const std::string& op) {
  static const char* const kOps[] = {
      "ReduceMean", "ReduceMax",       "ReduceMin",      "ReduceProd",     "ReduceL1",
      "ReduceL2",   "ReduceLogSum",    "ReduceLogSumExp", "ReduceSumSquare"};
  for (const char* o : kOps) {
    if (op == o) return true;
  }
  return false;
}

absl::StatusOr<bool> Opset21UpgradePass::RunImpl(onnx::ModelProto* model) {
  const int64_t from = DefaultOpset(*model);
  if (from == kInt4ExportOpset) return false;
  if (from < kUpgradeTargetOpset || from > 17) {
    return absl::FailedPreconditionError(absl::StrCat(
        "upgrading to opset 21 needs a model at opset 13 to 17, this one imports ", from));
  }
  GraphEditor editor(model);
  for (auto& node : *model->mutable_graph()->mutable_node()) {
    if (!(node.domain().empty() || node.domain() == "ai.onnx")) continue;
    if (node.op_type() == "If" || node.op_type() == "Loop" || node.op_type() == "Scan") {
      return absl::UnimplementedError(absl::StrCat(
          training::DescribeNode(node), ": opset-21 export does not rewrite subgraphs yet"));
    }
    if (ReduceAxesBecameInputAt18(node.op_type())) IntsAttrToInput(editor, &node, "axes", 1);
    if (node.op_type() == "Split" && (node.input_size() < 2 || node.input(1).empty())) {
      SetAttr(&node, training::AttrInt("num_outputs", node.output_size()));
    }
    if (node.op_type() == "GridSample" || node.op_type() == "DFT") {
      return absl::UnimplementedError(absl::StrCat(
          training::DescribeNode(node), " changed at opset 20 and libqat runs only its "
          "opset-", node.op_type() == "DFT" ? "17" : "16", " form; export with --opset 13"));
    }
  }
  training::SetDefaultOpsetVersion(model, kInt4ExportOpset);
  model->set_ir_version(10);
  return true;
}

}  // namespace passes
}  // namespace qat
