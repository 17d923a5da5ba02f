// Sensitivity: how much each quantizable layer costs when quantized, and a
// mixed-precision assignment (low bits, 8 bits or fp32 per layer) that meets
// a target.  The one implementation behind `qat sensitivity` (issue 15).
//
//   SensitivityOptions options;
//   options.quantize.weight_bits = 4;           // the bits being studied
//   options.quantize.activation_bits = 4;
//   options.quantize.per_channel = true;
//   options.target_drop = 1.0;                  // accuracy points lost at most
//   QAT_ASSIGN_OR_RETURN(SensitivityReport r,
//                        AnalyzeSensitivity(model, calibration, validation, options));
//   QAT_RETURN_IF_ERROR(r.proposal->table.Save("mixed.json"));  // qat quantize --table
//
// What is measured.  The layers are the nodes QuantizeModel would quantize
// with options.quantize (QuantizableNodes, qat/quantize.h), less those that
// options.quantize.node_overrides already fixes (they keep their override in
// every configuration).  The model is calibrated once at the studied bits
// (and once more at 8 bits when they are lower, for the tensors a proposal
// puts at 8 bits), with the calibrate stage.  Then, for each layer, the
// quantize stage builds two models through the table's node_overrides:
//  - "alone": only this layer quantized, every other analysed layer fp32;
//  - "all but": every other layer quantized, this one fp32;
// and the evaluate stage measures them on `evaluation`, beside the fp32
// model and the fully quantized one.  An activation between a quantized and
// an fp32 layer is quantized (the quantized layer reads or writes it), as
// quantize does it.
//
// The metric: with labels, classification accuracy in percent (Evaluate;
// the mean cross-entropy is recorded too and breaks ties); without labels,
// or with kRelativeL2, the relative L2 error of the output
// (EvaluateOptions::output, else the first) against the fp32 model's
// (EvaluateOutputs).  A layer's "drop" is how much worse than fp32 it makes
// the metric: accuracy points lost, or the relative error itself (fp32 has
// none).  Layers are sorted by sensitivity, most sensitive first: the
// recovery from keeping the layer fp32 (all-but drop below the fully
// quantized drop), then the alone drop, then the loss.
//
// The proposal (when target_drop is set).  Every layer starts at the studied bits.
// While the measured drop exceeds the target, the next layer in sensitivity
// order goes up one level (studied bits -> 8-bit weights and activations ->
// fp32; the middle level is skipped when the studied bits are 8/8), and the
// assignment is re-quantized and re-measured.  Then each promoted layer, the
// last promoted first, is tried one level lower again and kept there when the
// re-measured drop still meets the target.  So the proposal's drop is a
// measurement of exactly the model that `quantize` builds from its table
// with the same options, never a prediction.  The table is the calibration
// table with a node_overrides entry for every analysed layer (explicit
// widths, or keep_float), so that `qat quantize --table` with the same
// flags rebuilds that model.
//
// Choose on validation data: `evaluation` should be held out from training
// and must not be the test set the final numbers come from.
//
// Errors: InvalidArgument for a negative target, a layer without a node name
// (node overrides go by name), no quantizable layer, or data that does not
// suit the metric (accuracy without labels); the stages' errors otherwise,
// prefixed with the configuration being measured.
// Determinism: for a given thread count the report (but for the seconds) is
// the same from run to run.
// Thread safety: each call owns its models and executors.
#ifndef QAT_SENSITIVITY_H_
#define QAT_SENSITIVITY_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qat/api.h"
#include "qat/calibrate.h"
#include "qat/calibration_table.h"
#include "qat/dataset.h"
#include "qat/evaluate.h"
#include "qat/model.h"
#include "qat/quantize.h"

namespace qat {

enum class SensitivityMetric {
  kAuto,        // accuracy when the data has labels, else relative L2
  kAccuracy,    // top-1 accuracy in percent; needs int64 labels
  kRelativeL2,  // ||y - y_fp32|| / ||y_fp32|| of one output; no labels needed
};

// "auto", "accuracy", "relative_l2"; Parse takes those (and "relative-l2").
QAT_API const char* SensitivityMetricName(SensitivityMetric metric);
QAT_API absl::StatusOr<SensitivityMetric> ParseSensitivityMetric(const std::string& name);

struct SensitivityOptions {
  // How every measured model is quantized: the studied bits (weight_bits,
  // activation_bits), types, granularity, node selection, fixed overrides.
  QuantizeOptions quantize;
  // How it is calibrated: method, observer settings, max_samples, batch,
  // threads.  The node selection, activation type, symmetry, bits and
  // per-channel setting are taken from `quantize`, so that the two agree.
  CalibrateOptions calibrate;
  // Or a table to use instead of calibrating at the studied bits (an 8-bit
  // calibration still runs when a proposal needs 8-bit tensors).
  std::optional<CalibrationTable> table;
  EvaluateOptions evaluate;
  SensitivityMetric metric = SensitivityMetric::kAuto;
  bool measure_all_but = true;  // also the all-but configurations (2x the runs)
  // Set: propose a mixed assignment whose drop is at most this (>= 0).
  std::optional<double> target_drop;
  int high_bits = 8;  // the middle level's weight and activation bits (>= the studied)
  // Called before each measurement with (measurements done, planned so far,
  // what is being measured); the plan grows while a proposal is searched.
  std::function<void(int, int, const std::string&)> progress;
};

// One measured configuration.
struct SensitivityMeasurement {
  double metric = 0.0;  // accuracy in percent, or relative L2
  double loss = 0.0;    // mean cross-entropy (accuracy), or the relative L2 again
  double drop = 0.0;    // accuracy points lost against fp32, or the relative L2
};

struct LayerSensitivity {
  std::string node, op_type;
  SensitivityMeasurement alone;    // only this layer quantized
  SensitivityMeasurement all_but;  // every other layer quantized, this one fp32
  bool has_all_but = false;
  // all_quantized.drop - all_but.drop: what keeping this layer fp32 buys.
  double recovery = 0.0;
};

// A layer's precision in a proposal.
enum class LayerPrecision { kLow, kHigh, kFloat };
// "w4a4" (the low bits), "w8a8", "fp32".
QAT_API std::string LayerPrecisionName(LayerPrecision p, const QuantizeOptions& options,
                                       int high_bits);

struct MixedPrecisionProposal {
  struct Layer {
    std::string node;
    LayerPrecision precision = LayerPrecision::kLow;
    std::string name;  // LayerPrecisionName
  };
  std::vector<Layer> layers;  // in the report's layer order
  double target_drop = 0.0;
  SensitivityMeasurement measured;  // of the final assignment
  bool meets_target = false;
  int high_precision_layers = 0;  // layers not at the low bits
  int measurements = 0;           // quantize + evaluate runs the search took
  // The calibration table with node_overrides for every layer: `qat
  // quantize --table` (with the same flags) builds the measured model.
  CalibrationTable table;
};

struct SensitivityReport {
  std::string metric;  // "accuracy" or "relative_l2"
  std::string output;  // the output measured
  int64_t examples = 0;
  int weight_bits = 8, activation_bits = 8, high_bits = 8;
  SensitivityMeasurement fp32, all_quantized;
  std::vector<LayerSensitivity> layers;  // most sensitive first
  std::optional<MixedPrecisionProposal> proposal;
  std::vector<std::string> warnings;  // the quantize stage's, once each
  double seconds = 0.0;

  // The report as a JSON document (docs/quantization.md shows one).
  QAT_API std::string ToJson() const;
};

QAT_API absl::StatusOr<SensitivityReport> AnalyzeSensitivity(
    const Model& model, const Dataset& calibration, const Dataset& evaluation,
    const SensitivityOptions& options = {});

}  // namespace qat

#endif  // QAT_SENSITIVITY_H_
