// Observers: they see a tensor's float values batch by batch during
// calibration, and report the range [rmin, rmax] to quantize it with.
//
// An observer works per tensor, or per channel (options.axis set): then each
// index along the axis has its own state and its own range.  Memory does not
// grow with the number of batches: the histogram methods keep a fixed-size
// Histogram (qat/histogram.h) per channel, and every method tracks the exact
// minimum and maximum.
//
// Methods (CalibrationMethod, and the names ParseCalibrationMethod takes):
//   minmax          the smallest and largest value seen.
//   moving-average  an exponential moving average of each batch's min and max
//                   (PyTorch's MovingAverageMinMaxObserver): the first batch
//                   sets them, then m += averaging_constant * (batch_m - m).
//   percentile      symmetric: t = the percentile of |x|, range [-t, t];
//                   otherwise (100 - percentile) / 2 percent is cut from each
//                   side of the signed distribution.
//   entropy         the threshold t on |x| whose 128-level quantization loses
//                   the least information (KL divergence), as in TensorRT's
//                   and ONNX Runtime's entropy calibration; range [-t, t].
//   mse             the range, from a one-parameter family, whose FakeQuant
//                   grid gives the smallest expected squared error.
// The histogram methods assume that the values inside a bin are spread
// uniformly, and their ranges never extend past the exact min and max: a
// symmetric [-t, t] is intersected with [min, max].  The details of each
// search are in lib/observers/range_search.h.
//
// A batch with a NaN or an infinity is rejected with InvalidArgument, naming
// the index, and leaves the observer unchanged; the caller adds the tensor's
// name.
#ifndef QAT_OBSERVER_H_
#define QAT_OBSERVER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "qat/api.h"
#include "qat/quant_range.h"

namespace qat {

enum class CalibrationMethod { kMinMax, kMovingAverage, kPercentile, kEntropy, kMse };

// "minmax", "moving-average", "percentile", "entropy", "mse".
QAT_API const char* CalibrationMethodName(CalibrationMethod method);
// InvalidArgument, listing the valid names, for anything else.
QAT_API absl::StatusOr<CalibrationMethod> ParseCalibrationMethod(
    absl::string_view name);

struct ObserverOptions {
  CalibrationMethod method = CalibrationMethod::kMinMax;
  // Per channel along this axis when set; a negative axis counts from the end.
  std::optional<int64_t> axis;
  // Percentile and MSE: search symmetric ranges [-t, t] (a threshold on |x|)
  // instead of asymmetric ones.  Set it when the tensor will be quantized
  // symmetrically.
  bool symmetric = false;

  // moving-average: in (0, 1].
  float averaging_constant = 0.01f;
  // percentile: in (0, 100].
  double percentile = 99.999;
  // percentile, entropy, mse: histogram bins, a power of two (see Histogram).
  int num_bins = 2048;
  // entropy: the number of quantization levels the KL search assumes, and the
  // smallest threshold it tries (in magnitude bins); at most num_bins / 2.
  int num_quantized_bins = 128;
  // mse: the grid the error is measured on (use the range the tensor will be
  // quantized to, e.g. QuantRangeFor(type, symmetric, reduce_range)), and the
  // number of candidate ranges, evenly spaced fractions 1/n, 2/n, ..., 1 of
  // the full range.
  QuantRange mse_quant_range = QuantRange::UInt8();
  int mse_num_candidates = 100;
};

struct ObservedRange {
  float rmin = 0.0f;  // the range to quantize with
  float rmax = 0.0f;
  float data_min = 0.0f;  // the exact extremes of the values seen
  float data_max = 0.0f;
};

class ChannelState;  // one channel's method-specific state (lib/observers)

class QAT_API Observer {
 public:
  ~Observer();
  Observer(Observer&&) noexcept;
  Observer& operator=(Observer&&) noexcept;

  const ObserverOptions& options() const { return options_; }

  // One batch with the given row-major shape.  A per-channel observer takes
  // its channel count from the first batch; later batches must agree.
  absl::Status Observe(absl::Span<const int64_t> shape,
                       absl::Span<const float> batch);
  // One flat batch; per-tensor observers only.
  absl::Status Observe(absl::Span<const float> batch);

  // One range per tensor, or one per channel.  FailedPrecondition while a
  // channel has seen no value.
  absl::StatusOr<std::vector<ObservedRange>> Ranges() const;

  // Adds what `other` observed (the same method, axis and bins, else
  // InvalidArgument): the result is the observer that saw both's batches,
  // exactly, for minmax, percentile, entropy and mse (a histogram is a
  // function of the multiset of values); Unimplemented for the moving
  // average, whose result depends on the batches' order.  Data-parallel
  // calibration merges the ranks' observers so.
  absl::Status Merge(const Observer& other);
  // The state as 64-bit words, and an observer with `options` back from
  // them (InvalidArgument for words that are not such a state), for a
  // transport between processes.  Unimplemented for the moving average.
  absl::StatusOr<std::vector<uint64_t>> SaveState() const;
  static absl::StatusOr<std::unique_ptr<Observer>> FromState(const ObserverOptions& options,
                                                             absl::Span<const uint64_t> words);

 private:
  friend QAT_API absl::StatusOr<std::unique_ptr<Observer>> MakeObserver(
      const ObserverOptions& options);
  explicit Observer(const ObserverOptions& options);
  absl::Status ResizeChannels(int64_t channels);

  ObserverOptions options_;
  std::vector<std::unique_ptr<ChannelState>> channels_;
  std::vector<float> data_min_, data_max_;
  std::vector<uint64_t> seen_;  // values seen, per channel
};

// One step of the moving-average method (PyTorch's
// MovingAverageMinMaxObserver): average += constant * (batch - average).
// The first batch sets the average instead; the caller tracks that.
inline float MovingAverageStep(float average, float batch, float constant) {
  return average + constant * (batch - average);
}

// InvalidArgument, naming the option, for options out of range.
QAT_API absl::StatusOr<std::unique_ptr<Observer>> MakeObserver(
    const ObserverOptions& options);

}  // namespace qat

#endif  // QAT_OBSERVER_H_
