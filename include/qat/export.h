// Export: from a trained folder (or a trained eval model) to the inference
// model that ships, int8 QDQ when the model was quantized.
//
//   QAT_ASSIGN_OR_RETURN(Model int8, ExportFolder("qat_dir"));
//   QAT_RETURN_IF_ERROR(int8.Save("int8.onnx"));
//
// ExportFolder reads FOLDER/eval.onnx and FOLDER/checkpoint
// (qat/training_artifacts.h), writes the checkpoint's parameters (and, in
// observe mode, its observed scales and zero points) over the eval model's
// initializers, and calls ExportQuantizedModel:
//  - the loss, the labels input and what only they need are dropped
//    (ExportInferenceModel);
//  - each FakeQuant becomes QuantizeLinear -> DequantizeLinear with its
//    scale and zero point, and weights become int8 initializers behind a
//    DequantizeLinear (about 4x smaller than fp32) unless
//    keep_float_weights; 4-bit weights are packed INT4 initializers behind
//    DequantizeLinear-21 (about 8x smaller; ExportOptions::opset), or at
//    opset 13 int8 values behind QuantizeLinear -> Clip(-8, 7) ->
//    DequantizeLinear.
//    Dequantized weights are bit-identical to what FakeQuant computed in
//    training.  A model without FakeQuant exports as a float model.
// ONNX Runtime runs the result as it is.
//
// Errors: NotFound naming the missing file of the folder; DataLoss naming a
// checkpoint that is truncated or corrupt; InvalidArgument for a checkpoint
// parameter that is not an initializer of the eval model, or an eval model
// without outputs besides the loss.
// Determinism: the exported model is a pure function of the folder (or of
// the eval model and the parameters).
// Thread safety: these functions keep no state; calls may run concurrently.
#ifndef QAT_EXPORT_H_
#define QAT_EXPORT_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "qat/api.h"
#include "qat/checkpoint.h"
#include "qat/model.h"
#include "qat/tensor.h"

namespace qat {

struct ExportOptions {
  bool keep_float_weights = false;  // weights stay float behind their QDQ pair
  // The default-domain opset of the export: 13, or 21 (packed INT4 / UINT4
  // weights behind DequantizeLinear-21, block-wise grids as its block_size;
  // the rest of the graph upgraded, see docs/formats.md).  0 picks 21 when
  // some weight is stored with a 4-bit range or is block-wise, 13 otherwise.
  int opset = 0;
  // Block-wise packed weights: snap block scales to uint8 codes times a
  // power-of-two step per output channel, stored as such (a quarter of the
  // scales' bytes; lossy for scales that training moved off that form: the
  // weight is stored on the snapped grid).  Scales already of that form
  // (quantize's uint8_block_scales, fixed in training) are written so
  // without this, exactly.
  bool uint8_block_scales = false;
};

// The folder that Prepare wrote and TrainFolder trained.
QAT_API absl::StatusOr<Model> ExportFolder(const std::string& folder,
                                           const ExportOptions& options = {});

// The trained eval model as an int8 QDQ inference model.  `params`
// (optional) overrides initializers by name: the trained values.
QAT_API absl::StatusOr<Model> ExportQuantizedModel(
    const Model& eval, const std::map<std::string, Tensor>& params = {},
    const ExportOptions& options = {});

// The eval model as a plain inference model: without the loss and the
// labels, with `params` (when given) written over the initializers of the
// same name.  FakeQuant nodes stay.
QAT_API absl::StatusOr<Model> ExportInferenceModel(
    const Model& eval, const std::map<std::string, Tensor>& params = {});

// What an export writes over the eval model's initializers: the
// checkpoint's parameters and, in observe mode, its observed scales and
// zero points.
QAT_API std::map<std::string, Tensor> ExportedParameters(const Checkpoint& checkpoint);

}  // namespace qat

#endif  // QAT_EXPORT_H_
