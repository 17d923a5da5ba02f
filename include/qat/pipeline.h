// The pipeline recipe: what `qat pipeline` does, as one library call over
// the stages, so that the C ABI and Python get it too.
//
//   fp32 model (the 784-500-10 MLP, LeNet-5 with zoo "lenet5", or model_path)
//   -> train fp32 (Prepare + TrainFolder: AdamW 1e-3 for `epochs`, then a
//      chained epoch at 1e-4; none with epochs 0, for a trained model)
//   -> Calibrate (calibration_samples training examples) -> PTQ int8
//      (QuantizeModel, per-channel int8 weights)
//   -> QAT int8 and QAT W4A8 (4-bit per-channel weights, 8-bit activations):
//      QuantizeModel -> Prepare (QDQ -> FakeQuant) -> TrainFolder for
//      qat_epochs at qat_lr -> ExportFolder
//   -> Evaluate every model's accuracy, its file size, and its latency on
//      the executor (one thread, one batch, the median of repeated runs).
//
// Data without labels (a folder of .npy inputs, an .npz, FEATURES.npy): the
// model is taken as trained (no fp32 training, whatever `epochs` says), QAT
// distills from it (the fp32 model is the teacher: MSE on every output,
// qat/loss.h), and each row is measured against it on the test data
// (EvaluateOutputs: relative L2, SQNR, max abs error, cosine, argmax
// agreement) instead of by accuracy.
//
// Every artifact lands in `out` (created if needed): untrained.onnx,
// fp32/ (a training folder), fp32.onnx, calibration.json
// [calibration_qat.json], ptq_int8.onnx, qdq_int8.onnx, qat_int8/,
// qat_int8.onnx, qdq_w4a8.onnx, qat_w4a8/, qat_w4a8.onnx [and the low-bit
// rows' files, see PipelineOptions::low_bit_rows].
// PipelineResult::artifacts lists them in the order written, with what the
// on_graph hook adds.  Drawing (plots, graph pictures), ONNX Runtime's
// measurements and the report files are the caller's (examples/cli).
//
// Errors: those of the stages (naming the file, node or tensor);
// PermissionDenied naming `out` when it cannot be created; a hook's error,
// returned as it is.
// Determinism: for a given seed and thread count every accuracy, loss and
// file is bit-identical from run to run (latencies and times are measured).
// Thread safety: one call per `out` folder at a time.
#ifndef QAT_PIPELINE_H_
#define QAT_PIPELINE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "qat/api.h"
#include "qat/calibration_table.h"
#include "qat/dataset.h"
#include "qat/evaluate.h"
#include "qat/lr_schedule.h"
#include "qat/model.h"
#include "qat/observer.h"
#include "qat/train_folder.h"

namespace qat {

struct PipelineOptions {
  // "mlp", "lenet5", or with BatchNorm "resnet8" or "mobilenetv2"
  // (qat/model_zoo.h), when model_path is empty
  std::string zoo = "mlp";
  std::string model_path;
  std::string data = kFashionMnistDir;  // a data spec (qat/data_spec.h)
  std::string out = "qat-pipeline";
  int64_t epochs = 3;  // fp32 at 1e-3, then one epoch at 1e-4; 0: no fp32 training
  int64_t qat_epochs = 1;
  double qat_lr = 1e-4;
  // Cosine decay from qat_lr to 0 over the QAT epoch(s): a constant rate
  // leaves the last steps' noise, and the flipping of weights that sit near
  // a rounding boundary, in the final weights; decaying it settles them.
  // Measured in docs/cli.md: better mean and worst case than constant on
  // both models and both bit widths.
  LrScheduleKind qat_schedule = LrScheduleKind::kCosine;
  // LSQ: QAT learns the scales and zero points, so the calibration only
  // sets the starting point.  Measured (docs/cli.md): the same accuracy as
  // fixed parameters at int8, and slightly better at W4A8 on both the MLP
  // and LeNet-5, as the LSQ paper leads one to expect for coarse grids.
  bool learn_quant_params = true;
  CalibrationMethod ptq_method = CalibrationMethod::kPercentile;
  // QAT starts from the PTQ table by default: QAT fine-tunes the PTQ model.
  CalibrationMethod qat_method = CalibrationMethod::kPercentile;
  int64_t calibration_samples = 1000;
  int64_t batch = 64;      // training, and the latency measurement's batch
  int64_t limit = 0;       // training examples (0: all)
  int64_t test_limit = 0;  // test examples (0: all)
  int threads = 0;
  uint64_t seed = 0;
  double latency_seconds = 1.0;  // measure each model's latency this long
  // Issue 15's low-bit rows, after the others: for each of W4A4, W2A8 and
  // W3A3 (weight and activation bits), a calibration at those bits
  // (low_bit_method; calibration_wXaY.json), a PTQ row ("ptq w4a4",
  // ptq_w4a4.onnx) and a QAT row from the same table ("qat w4a4": qdq_w4a4.onnx,
  // qat_w4a4/, qat_w4a4.onnx) trained for low_bit_qat_epochs at
  // low_bit_qat_lr with qat_schedule.  Off by default: the four rows above
  // stay as they are.  Settings chosen on a validation split of the training
  // data (docs/quantization.md).
  bool low_bit_rows = false;
  CalibrationMethod low_bit_method = CalibrationMethod::kMse;
  int64_t low_bit_qat_epochs = 6;
  double low_bit_qat_lr = 1e-3;
};

// One curve point per epoch (x may be fractional for the start of a stage).
struct EpochPoint {
  double epoch = 0.0;
  double train_loss = -1.0;  // -1: none (the point before training)
  double test_loss = 0.0;
  double test_accuracy = 0.0;
};

struct StageCurve {
  StageCurve() = default;
  explicit StageCurve(std::string curve_name) : name(std::move(curve_name)) {}
  std::string name;  // "fp32", "qat int8", "qat w4a8"
  std::vector<EpochPoint> points;
};

// One model of the result table.
struct PipelineRow {
  PipelineRow() = default;
  PipelineRow(std::string row_name, std::string row_file)
      : name(std::move(row_name)), file(std::move(row_file)) {}
  std::string name;    // "fp32", "ptq int8", "qat int8", "qat w4a8"
  std::string file;    // relative to the output folder
  std::string recipe;  // how it was made, in a few words
  double accuracy = 0.0;       // our executor, test set (labelled data only)
  // Unlabelled data: the row's outputs against the fp32 model's on the test
  // set (EvaluateOutputs); empty for labelled data.
  std::vector<OutputMetrics> metrics;
  double start_accuracy = -1;  // QAT rows: before QAT (the fake-quantized start)
  size_t bytes = 0;            // the file's size
  double latency_ms = 0.0;     // our executor, one thread, one batch
  double seconds = 0.0;        // time the stage took
};

// The values one activation takes on the calibration samples (as fp32
// computes them), for a histogram: the input of the second MatMul, Gemm or
// Conv (for the MLP, the first hidden activation).
struct ActivationValues {
  std::string tensor;
  std::vector<float> values;
};

struct PipelineResult {
  bool labelled = true;  // false: QAT distilled, rows carry metrics (see above)
  std::vector<PipelineRow> rows;
  std::vector<Model> models;  // rows[i]'s model
  std::vector<StageCurve> curves;
  std::vector<std::string> artifacts;  // in `out`, in the order written
  CalibrationTable ptq_table;
  CalibrationTable qat_table;  // == ptq_table unless qat_method differs
  ActivationValues activation;
  std::vector<int64_t> example_shape;  // one test example, as fed to the models
};

// A model the pipeline shows: `name` is a file stem ("graph_fp32"), `title`
// a caption.
struct PipelineGraph {
  std::string name;
  std::string title;
  const Model* model = nullptr;
};

// One training step of a stage.
struct PipelineStep {
  std::string stage;   // the curve's name
  int64_t epoch = 0;   // 1-based, counted over the stage's phases
  int64_t epochs = 0;  // the stage's epochs
  float phase_lr = 0;  // the phase's base rate
  TrainFolderStep step;
};

// One finished epoch of a stage, with its test evaluation.
struct PipelineEpoch {
  std::string stage;
  int64_t epoch = 0;  // 1-based, counted over the stage's phases
  EpochPoint point;
};

struct PipelineHooks {
  std::function<void(const PipelineStep&)> on_step;
  std::function<void(const PipelineEpoch&)> on_epoch;
  // Called for each graph worth a picture (fp32, the int8 QDQ model, the
  // FakeQuant training graph, the exported models), in order; returns the
  // files it wrote in `out`, which join PipelineResult::artifacts.
  std::function<absl::StatusOr<std::vector<std::string>>(const PipelineGraph&)> on_graph;
};

QAT_API absl::StatusOr<PipelineResult> RunPipeline(const PipelineOptions& options,
                                                   const PipelineHooks& hooks = {});

}  // namespace qat

#endif  // QAT_PIPELINE_H_
