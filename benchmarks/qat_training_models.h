// The QAT training graphs the benchmarks time: a float model calibrated on
// one batch, quantized (int8 per-channel weights, uint8 activations), fused
// into FakeQuant and prepared for training with the chosen treatment of its
// scales and zero points.  Shared by training_benchmark (the MLP) and
// conv_models_benchmark (models from files).
#ifndef QAT_BENCHMARKS_QAT_TRAINING_MODELS_H_
#define QAT_BENCHMARKS_QAT_TRAINING_MODELS_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "qat/calibrate.h"
#include "qat/dataset.h"
#include "qat/model.h"
#include "qat/prepare.h"
#include "qat/quantize.h"
#include "qat/tensor.h"
#include "qat/training_graph.h"

namespace qat {

// How a QAT training graph treats its scales and zero points.
enum QuantParamMode : int64_t { kFixed = 0, kObserve = 1, kLearn = 2 };

inline absl::StatusOr<TrainingModels> QatTrainingModels(const Model& model,
                                                        const Tensor& features,
                                                        const Tensor& labels,
                                                        QuantParamMode mode) {
  auto data = Dataset::Create(features, labels);
  if (!data.ok()) return data.status();
  CalibrateOptions calibrate;
  calibrate.per_channel_weights = true;
  auto table = Calibrate(model, *data, calibrate);
  if (!table.ok()) return table.status();
  QuantizeOptions quantize;
  quantize.per_channel = true;
  auto qdq = QuantizeModel(model, *table, quantize);
  if (!qdq.ok()) return qdq.status();
  PrepareOptions options;
  options.graph.loss.kind = LossKind::kCrossEntropy;
  options.graph.learn_quant_params = mode == kLearn;
  options.graph.observe_quant_params = mode == kObserve;
  return PrepareModels(*qdq, options);
}

}  // namespace qat

#endif  // QAT_BENCHMARKS_QAT_TRAINING_MODELS_H_
