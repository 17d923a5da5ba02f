// AddTeacherPass: puts a teacher model's graph into a student's, so that
// one executor runs both on the same batch and a distillation loss
// (qat/loss.h, DistillOptions) compares them.  The teacher's values and
// initializers are renamed "teacher/<name>"; its inputs are the student's
// inputs of the same names.  Nothing of the teacher is a graph output, so
// an export (which keeps what the outputs need) drops it, and no gradient
// reaches it: the training build freezes every "teacher/*" initializer.
//
// Before:  x ─> student ─> y                 outputs: y
//          x ─> teacher ─> y                 (another model)
// After:   x ─> student ─> y                 outputs: y
//          x ─> teacher/... ─> teacher/y
//
// Conditions (InvalidArgument otherwise, naming the input or the name):
//  1. every teacher input is a student input;
//  2. the student has no value starting with "teacher/";
//  3. the teacher has no subgraphs left (If and Loop fixed by constants are
//     inlined first, as the student's are);
//  4. both import the default domain at opset 13 or later (a teacher at
//     7-12 is upgraded to 13 first, as prepare upgrades the student); the
//     lower one is raised to the higher (GraphEditor::RaiseOpset; to 21 by
//     passes::Opset21UpgradePass, which rewrites the Reduce* axes).
#ifndef QAT_LIB_PASSES_ADD_TEACHER_H_
#define QAT_LIB_PASSES_ADD_TEACHER_H_

#include <utility>

#include "graph/graph_pass.h"
#include "onnx/onnx_pb.h"

namespace qat {
namespace training {

class AddTeacherPass : public passes::GraphPass {
 public:
  explicit AddTeacherPass(const onnx::ModelProto& teacher) : teacher_(teacher) {}
  absl::string_view name() const override { return "add_teacher"; }

 private:
  absl::StatusOr<bool> RunImpl(onnx::ModelProto* model) override;
  const onnx::ModelProto& teacher_;
};

}  // namespace training
}  // namespace qat

#endif  // QAT_LIB_PASSES_ADD_TEACHER_H_
