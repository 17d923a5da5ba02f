// QuantParamObserver: the quantization parameters of observe mode
// (TrainingGraphOptions::observe_quant_params), updated by the Trainer after
// each step.
//
// For every FakeQuant node of the training model (com.microsoft per tensor,
// ai.libqat per channel along `axis`), by what its input X is:
//   weight (X is a trainable parameter): the range is the weight's current
//     min and max, per channel where the node is per channel;
//   activation (any other value): the range is an exponential moving
//     average of each step's min and max, PyTorch's
//     MovingAverageMinMaxObserver: the first observed step sets it, later
//     ones move it by MovingAverageStep (qat/observer.h);
//   constant (X is an initializer that does not train): left as calibrated.
// Batch extremes come from a minmax Observer (which also rejects NaN and
// Inf), and scale and zero point from ComputeQuantParams (which widens the
// range to include 0) with the node's quant_min and quant_max: exactly the
// calibration's code.  A node is symmetric when its initial zero points all
// equal the symmetric zero point of its range (0 for the quantizer's int8
// weights in [-127, 127]); otherwise asymmetric.
//
// State: the moving averages, "<scale>.min_val" and "<scale>.max_val"
// (shaped like the scale), kept for checkpoints.
#ifndef QAT_LIB_TRAIN_QUANT_PARAM_OBSERVER_H_
#define QAT_LIB_TRAIN_QUANT_PARAM_OBSERVER_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "qat/model.h"
#include "qat/quant_range.h"
#include "qat/tensor.h"

namespace qat {
namespace training {

class QuantParamObserver {
 public:
  // Finds the FakeQuant nodes of `training`; `params` are its trainable
  // parameters.  InvalidArgument, naming the node, for a scale or zero point
  // that is not an initializer or that several FakeQuant nodes share, and
  // for an averaging constant outside (0, 1].
  static absl::StatusOr<QuantParamObserver> Create(const Model& training,
                                                   const std::vector<std::string>& params,
                                                   float averaging_constant);

  // The scale and zero-point initializers it updates, in graph order.
  const std::vector<std::string>& quant_param_names() const { return quant_names_; }
  // The activations it reads after a step.
  std::vector<std::string> activation_names() const;

  // One step: reads each node's X through `value_of` (a weight's current
  // value or the activation the step computed) and writes new scales and
  // zero points into `quant`.  Either everything is updated or, on an error
  // (a missing value, NaN or Inf, a channel count that disagrees with the
  // scale), nothing is.
  //
  // Data-parallel training passes `reduce`, which replaces this rank's batch
  // extremes (every site's channels, flat, in graph order) by the minimum
  // and maximum over the ranks before the moving averages move: so every
  // rank applies the global batch's range, exactly as one process would.
  // An empty value (a rank without examples) contributes +inf / -inf.
  using RangeReducer = std::function<absl::Status(absl::Span<float> mins,
                                                  absl::Span<float> maxs)>;
  absl::Status Update(const std::function<const Tensor*(const std::string&)>& value_of,
                      std::map<std::string, Tensor>* quant, const RangeReducer& reduce = {});

  const std::map<std::string, Tensor>& state() const { return state_; }
  // InvalidArgument, naming the tensor, for a name or a shape that is not
  // this model's.
  absl::Status RestoreState(const std::map<std::string, Tensor>& state);

 private:
  struct Site {
    std::string node;  // DescribeNode, for messages
    std::string x, scale, zero_point;
    QuantRange range;
    std::optional<int64_t> axis;
    int64_t channels = 1;
    bool symmetric = false;
    bool weight = false;
  };
  std::vector<Site> sites_;  // weights and activations; constants are left out
  std::vector<std::string> quant_names_;
  float averaging_constant_ = 0.01f;
  std::map<std::string, Tensor> state_;
};

}  // namespace training
}  // namespace qat

#endif  // QAT_LIB_TRAIN_QUANT_PARAM_OBSERVER_H_
