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
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qat/calibration_table.h"
#include "qat/collective.h"
#include "qat/dataset.h"
#include "qat/api.h"
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
  // The widths the table is for (2..8; qat/quant_params.h).  Below 8 bits
  // the MSE search measures the error on that grid and entropy assumes
  // 2^(bits-1) levels, and the entries hold that width; weights at 2 and 3
  // bits take the MSE-optimal clip whatever the method (as quantize does).
  // At 8 bits everything is as it always was.
  int activation_bits = 8;
  QuantRangeMode activation_range = QuantRangeMode::kAuto;
  int weight_bits = 8;
  bool per_channel_weights = false;
  int64_t max_samples = 0;  // 0: the whole dataset
  int64_t batch_size = 64;
  int num_threads = 0;  // 0: one per core; at most kMaxThreads (qat/thread_pool.h)
  // Called after each batch with (samples done, samples in total).
  std::function<void(int64_t, int64_t)> progress;
  // Data-parallel calibration (qat/collective.h): every rank calls
  // Calibrate with the same model, data and options and observes its shard
  // (ShardOf) of the max_samples; Finish merges the activation observers
  // exactly (Observer::Merge), so every rank gets the table of one process,
  // bit for bit, for minmax, percentile, entropy and mse (the moving average
  // is Unimplemented).  progress counts this rank's shard.
  std::shared_ptr<Collective> collective;
};

// Streaming calibration: batches go in one at a time (from any source), the
// table comes out at the end.
class QAT_API Calibrator {
 public:
  // InvalidArgument for a model without a data input, or a node
  // name in the options that the model does not have.
  static absl::StatusOr<std::unique_ptr<Calibrator>> Create(const Model& model,
                                                            const CalibrateOptions& options);
  ~Calibrator();

  // One batch of the model's input (a single-input model).  InvalidArgument,
  // naming the tensor, when an observed value is NaN or infinite.
  absl::Status Observe(const Tensor& batch);
  // One batch of every data input, by name (any model).
  absl::Status Observe(const std::map<std::string, Tensor>& batch);
  int64_t samples() const;

  // The table over everything observed.  FailedPrecondition before any batch.
  absl::StatusOr<CalibrationTable> Finish();

 private:
  struct State;
  explicit Calibrator(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// Calibrates over the first max_samples examples of `data`.  InvalidArgument
// for an empty dataset, and as Calibrator says.
QAT_API absl::StatusOr<CalibrationTable> Calibrate(const Model& model,
                                                   const Dataset& data,
                                                   const CalibrateOptions& options = {});

}  // namespace qat

#endif  // QAT_CALIBRATE_H_
