// Calibration: run a model over data, observe the tensors that quantization
// needs, and write their ranges and quantization parameters to a table.
//
// The tensors are those QuantizeModel touches for the same node selection:
// the activation inputs and outputs of MatMul, Gemm and Conv by default
// (role "activation", per tensor), and their weights (role "weight",
// symmetric int8, per channel when asked).  The model runs on the executor
// in batches; observers keep fixed-size state, so memory does not grow with
// the number of samples.
#ifndef QAT_CALIBRATE_H_
#define QAT_CALIBRATE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qat/calibration_table.h"
#include "qat/dataset.h"
#include "qat/export.h"
#include "qat/model.h"
#include "qat/observer.h"

namespace qat {

struct CalibrateOptions {
  CalibrationMethod method = CalibrationMethod::kMinMax;
  // Method settings (percentile, bins, moving-average constant); the method,
  // axis and symmetry fields are set by Calibrate.
  ObserverOptions observer;
  std::vector<std::string> op_types = {"MatMul", "Gemm", "Conv"};
  std::vector<std::string> include_nodes, exclude_nodes;
  QuantType activation_type = QuantType::kUInt8;
  bool symmetric_activations = false;
  bool per_channel_weights = false;
  int64_t max_samples = 0;  // 0: the whole dataset
  int64_t batch_size = 64;
  int num_threads = 0;
  // Called after each batch with (samples done, samples in total).
  std::function<void(int64_t, int64_t)> progress;
};

// InvalidArgument for an empty dataset, a model without exactly one data
// input, or data that is not finite (naming the tensor).
QAT_API absl::StatusOr<CalibrationTable> Calibrate(const Model& model,
                                                   const Dataset& data,
                                                   const CalibrateOptions& options = {});

}  // namespace qat

#endif  // QAT_CALIBRATE_H_
