// Fuzz target: arbitrary bytes as an ONNX model, through loading and the
// graph pipeline (quantize with a table made from its own tensors, fuse,
// build training graphs).  Any crash, hang or sanitizer report is a bug;
// errors are the expected outcome for most inputs.
#include <cstddef>
#include <cstdint>

#include "qat/calibration_table.h"
#include "qat/qdq_conversion.h"
#include "qat/quantize.h"
#include "qat/training_graph.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto model = qat::Model::FromBytes(
      absl::string_view(reinterpret_cast<const char*>(data), size), "fuzz.onnx");
  if (!model.ok()) return 0;
  // A table with an entry for every graph input, so that the quantizer gets
  // past its first check on some inputs.
  qat::CalibrationTable table;
  for (const qat::ValueInfo& v : model->inputs()) {
    auto e = qat::MakeCalibrationEntry(qat::TensorRole::kActivation, qat::QuantType::kUInt8,
                                       qat::CalibrationMethod::kMinMax, false, false,
                                       std::nullopt, {{-1.0f, 1.0f, -1.0f, 1.0f}});
    if (e.ok()) (void)table.Set(v.name, *e);
  }
  auto quantized = qat::QuantizeModel(*model, table, {});
  auto fused = qat::FuseQdqToFakeQuant(quantized.ok() ? *quantized : *model);
  if (fused.ok()) (void)qat::BuildTrainingModels(*fused, {});
  return 0;
}
