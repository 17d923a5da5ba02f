#include "passes/add_teacher.h"

#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "graph/graph_editor.h"
#include "graph/graph_index.h"
#include "passes/inline_control_flow.h"
#include "passes/opset_upgrade.h"
#include "qat/loss.h"
#include "qat/status_macros.h"

namespace qat {
namespace training {

absl::StatusOr<bool> AddTeacherPass::RunImpl(onnx::ModelProto* model) {
  onnx::ModelProto teacher = teacher_;
  if (passes::DefaultOpset(teacher) < passes::kUpgradeTargetOpset) {
    passes::OpsetUpgradePass upgrade;  // as prepare upgrades the student
    QAT_RETURN_IF_ERROR(upgrade.Run(&teacher).status());
  }
  QAT_RETURN_IF_ERROR(passes::InlineControlFlowPass().Run(&teacher).status());
  onnx::GraphProto& tg = *teacher.mutable_graph();
  onnx::GraphProto& sg = *model->mutable_graph();
  for (const auto& n : tg.node()) {
    if (graph::HasSubgraph(n)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the teacher's node ", DescribeNode(n),
          " holds a subgraph that is not fixed by constants; distillation needs a teacher "
          "without control flow"));
    }
  }
  // Opsets: both at 13 or later, the lower raised to the higher.
  const int64_t student_opset = passes::DefaultOpset(*model);
  const int64_t teacher_opset = passes::DefaultOpset(teacher);
  if (student_opset < passes::kUpgradeTargetOpset || teacher_opset < passes::kUpgradeTargetOpset) {
    return absl::InvalidArgumentError(absl::StrCat(
        "distillation needs student and teacher at opset 13 or later; they import ",
        student_opset, " and ", teacher_opset));
  }
  // To opset 21 by Opset21UpgradePass: RaiseOpset only relabels, which
  // would leave Reduce* reading their opset-13 axes attributes.
  auto raise = [](onnx::ModelProto* lower, int64_t version) -> absl::Status {
    if (version == passes::kInt4ExportOpset) {
      return passes::Opset21UpgradePass().Run(lower).status();
    }
    return GraphEditor(lower).RaiseOpset(version);
  };
  if (teacher_opset < student_opset) {
    QAT_RETURN_IF_ERROR(raise(&teacher, student_opset));
  } else if (student_opset < teacher_opset) {
    QAT_RETURN_IF_ERROR(raise(model, teacher_opset));
  }
  // Names: the student's own must not start with the prefix.
  std::set<std::string> student_inputs;
  for (const auto& v : sg.input()) student_inputs.insert(v.name());
  auto clash = [](const std::string& name) { return absl::StartsWith(name, kTeacherPrefix); };
  for (const auto& n : sg.node()) {
    for (const auto& o : n.output()) {
      if (clash(o)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the student already has a value '", o, "' (the prefix '", kTeacherPrefix,
            "' names the teacher's values)"));
      }
    }
  }
  std::set<std::string> teacher_inputs;
  const graph::GraphIndex index(tg);
  for (const auto& v : tg.input()) {
    if (index.IsInitializer(v.name())) continue;  // an initializer listed as an input
    if (student_inputs.count(v.name()) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the teacher's input '", v.name(), "' is not an input of the student"));
    }
    teacher_inputs.insert(v.name());
  }
  auto rename = [&](std::string* name) {
    if (!name->empty() && teacher_inputs.count(*name) == 0) {
      *name = absl::StrCat(kTeacherPrefix, *name);
    }
  };
  for (auto& t : *tg.mutable_initializer()) {
    rename(t.mutable_name());
    *sg.add_initializer() = std::move(t);
  }
  for (auto& n : *tg.mutable_node()) {
    for (auto& i : *n.mutable_input()) rename(&i);
    for (auto& o : *n.mutable_output()) rename(&o);
    if (!n.name().empty()) n.set_name(absl::StrCat(kTeacherPrefix, n.name()));
    *sg.add_node() = std::move(n);
  }
  // The teacher's other domains (a com.microsoft op, say) come along.
  for (const auto& op : teacher.opset_import()) {
    if (op.domain().empty() || op.domain() == "ai.onnx") continue;
    GraphEditor(model).EnsureOpset(op.domain(), op.version());
  }
  return true;
}

}  // namespace training
}  // namespace qat
