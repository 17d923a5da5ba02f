#include "graph/shape_inference.h"

#include <exception>

#include "absl/strings/str_cat.h"
#include "core/op_schemas.h"
#include "onnx/shape_inference/implementation.h"

namespace qat {
namespace graph {

absl::Status InferShapesLeniently(onnx::ModelProto* model) {
  RegisterOpSchemas();
  // ONNX reports problems by throwing; nothing may escape the library.
  try {
    onnx::ShapeInferenceOptions options;
    options.check_type = false;
    options.error_mode = 0;  // keep what can be inferred
    // Training graphs reshape gradients to Shape(x) computed at run time.
    options.enable_data_propagation = true;
    onnx::shape_inference::InferShapes(*model, onnx::OpSchemaRegistry::Instance(), options);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("shape inference failed: ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace graph
}  // namespace qat
