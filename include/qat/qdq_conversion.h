// Between QDQ models and QAT models.
//
// FuseQdqToFakeQuant turns each QuantizeLinear -> [Clip] -> DequantizeLinear
// pair with constant parameters into one FakeQuant node (com.microsoft per
// tensor, ai.libqat per channel), so that the model can be trained: see
// lib/passes/fuse_qdq_to_fake_quant.h for the exact conditions.  It handles what ONNX
// Runtime's QDQ fusion trips on: zero points in raw_data, a zero point shared
// by several pairs, an absent zero point (uint8), opsets 10 to 21, and
// narrow ranges expressed with a Clip ([-127, 127], 4-bit).
//
// ExportQuantizedModel is the way back: from a trained eval model (loss,
// labels and gradients are dropped) to an int8 QDQ inference model that ONNX
// Runtime runs as it is.  Each FakeQuant becomes QuantizeLinear ->
// DequantizeLinear with its scale and zero point; weights become int8
// initializers behind a DequantizeLinear (about 4x smaller than fp32) unless
// keep_float_weights.  Dequantized weights are bit-identical to what
// FakeQuant computed during training.
#ifndef QAT_QDQ_CONVERSION_H_
#define QAT_QDQ_CONVERSION_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qat/api.h"
#include "qat/model.h"
#include "qat/tensor.h"

namespace qat {

// `warnings` (optional) receives one line per pair left alone.
QAT_API absl::StatusOr<Model> FuseQdqToFakeQuant(const Model& model,
                                                 std::vector<std::string>* warnings = nullptr);

struct ExportOptions {
  bool keep_float_weights = false;
};

// `params` (optional) overrides initializers by name: the trained values.
QAT_API absl::StatusOr<Model> ExportQuantizedModel(
    const Model& eval, const std::map<std::string, Tensor>& params = {},
    const ExportOptions& options = {});

}  // namespace qat

#endif  // QAT_QDQ_CONVERSION_H_
