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
// The way back, ExportQuantizedModel, is the export stage's (qat/export.h,
// included here so that code written against this header still builds).
#ifndef QAT_QDQ_CONVERSION_H_
#define QAT_QDQ_CONVERSION_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qat/api.h"
#include "qat/export.h"
#include "qat/model.h"
#include "qat/tensor.h"

namespace qat {

// `warnings` (optional) receives one line per pair left alone.
QAT_API absl::StatusOr<Model> FuseQdqToFakeQuant(const Model& model,
                                                 std::vector<std::string>* warnings = nullptr);

}  // namespace qat

#endif  // QAT_QDQ_CONVERSION_H_
