// The contract every graph pass follows (after XLA's HloPassInterface and
// ONNX Runtime's GraphTransformer): a public, non-virtual Run() that reports
// whether the model changed, forwarding to a private RunImpl(); errors come
// back prefixed "Failed after <pass>: ", as PassPipeline reports them.
#ifndef QAT_LIB_GRAPH_GRAPH_PASS_H_
#define QAT_LIB_GRAPH_GRAPH_PASS_H_

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "onnx/onnx_pb.h"

namespace qat {
namespace passes {

class GraphPass {
 public:
  virtual ~GraphPass() = default;

  // A short snake_case name, used in error messages and pipeline switches.
  virtual absl::string_view name() const = 0;

  // Transforms `model` in place.  Returns true when it changed anything.
  absl::StatusOr<bool> Run(onnx::ModelProto* model) {
    absl::StatusOr<bool> changed = RunImpl(model);
    if (!changed.ok()) return FailedAfter(name(), changed.status());
    return changed;
  }

  // `status` with its message prefixed "Failed after <pass>: ".
  static absl::Status FailedAfter(absl::string_view pass, const absl::Status& status) {
    return absl::Status(status.code(),
                        absl::StrCat("Failed after ", pass, ": ", status.message()));
  }

 private:
  virtual absl::StatusOr<bool> RunImpl(onnx::ModelProto* model) = 0;
};

}  // namespace passes
}  // namespace qat

#endif  // QAT_LIB_GRAPH_GRAPH_PASS_H_
