#include "qat/observer.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/base/casts.h"
#include "absl/strings/str_cat.h"
#include "kernels/finite_check.h"
#include "calib/range_search.h"
#include "qat/histogram.h"
#include "qat/quant_params.h"
#include "qat/status_macros.h"

namespace qat {

// A channel's values in one batch: `runs` runs of `run_length` contiguous
// values, `stride` values apart.  A per-tensor batch is one run.
struct ChannelSlice {
  const float* base;
  int64_t runs;
  int64_t run_length;
  int64_t stride;

  absl::Span<const float> run(int64_t r) const {
    return absl::Span<const float>(base + r * stride, run_length);
  }
};

// One channel's method-specific state.  Update sees only finite values, at
// least one, with their extremes; the Observer tracks the extremes over all
// batches and passes them to Range.
class ChannelState {
 public:
  virtual ~ChannelState() = default;
  virtual absl::Status Update(const ChannelSlice& slice, float batch_min,
                              float batch_max) = 0;
  virtual absl::StatusOr<FloatRange> Range(float data_min,
                                           float data_max) const = 0;
  // Adds another channel's state of the same method (Observer::Merge), and
  // writes / reads the state as 64-bit words (Observer::SaveState).
  virtual absl::Status Merge(const ChannelState& other) = 0;
  virtual absl::Status Save(std::vector<uint64_t>* words) const = 0;
  virtual absl::Status Load(absl::Span<const uint64_t>* words) = 0;
};

namespace {

class MinMaxState final : public ChannelState {
 public:
  absl::Status Update(const ChannelSlice&, float, float) override {
    return absl::OkStatus();
  }
  absl::StatusOr<FloatRange> Range(float data_min, float data_max) const override {
    return FloatRange{data_min, data_max};
  }
  absl::Status Merge(const ChannelState&) override { return absl::OkStatus(); }
  absl::Status Save(std::vector<uint64_t>*) const override { return absl::OkStatus(); }
  absl::Status Load(absl::Span<const uint64_t>*) override { return absl::OkStatus(); }
};

absl::Status OrderDependent() {
  return absl::UnimplementedError(
      "the moving-average method depends on the order of the batches, so its observers do "
      "not merge (data-parallel calibration takes minmax, percentile, entropy or mse)");
}

class MovingAverageState final : public ChannelState {
 public:
  explicit MovingAverageState(float constant) : constant_(constant) {}

  absl::Status Update(const ChannelSlice&, float batch_min,
                      float batch_max) override {
    if (!initialized_) {
      min_ = batch_min;
      max_ = batch_max;
      initialized_ = true;
    } else {
      min_ = MovingAverageStep(min_, batch_min, constant_);
      max_ = MovingAverageStep(max_, batch_max, constant_);
    }
    return absl::OkStatus();
  }
  absl::StatusOr<FloatRange> Range(float, float) const override {
    return FloatRange{min_, max_};
  }
  absl::Status Merge(const ChannelState&) override { return OrderDependent(); }
  absl::Status Save(std::vector<uint64_t>*) const override { return OrderDependent(); }
  absl::Status Load(absl::Span<const uint64_t>*) override { return OrderDependent(); }

 private:
  float constant_;
  bool initialized_ = false;
  float min_ = 0.0f, max_ = 0.0f;
};

class HistogramState final : public ChannelState {
 public:
  HistogramState(const ObserverOptions& options, Histogram histogram)
      : options_(options), histogram_(std::move(histogram)) {}

  absl::Status Update(const ChannelSlice& slice, float, float) override {
    for (int64_t r = 0; r < slice.runs; ++r) {
      QAT_RETURN_IF_ERROR(histogram_.Add(slice.run(r)));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<FloatRange> Range(float data_min, float data_max) const override {
    switch (options_.method) {
      case CalibrationMethod::kPercentile:
        return PercentileRange(histogram_, data_min, data_max,
                               options_.percentile, options_.symmetric);
      case CalibrationMethod::kEntropy:
        return EntropyRange(histogram_, data_min, data_max,
                            options_.num_quantized_bins);
      case CalibrationMethod::kMse:
        return MseRange(histogram_, data_min, data_max, options_.mse_quant_range,
                        options_.symmetric, options_.mse_num_candidates);
      default:
        return absl::InternalError("not a histogram method");
    }
  }

  absl::Status Merge(const ChannelState& other) override {
    return histogram_.Merge(static_cast<const HistogramState&>(other).histogram_);
  }
  // [limit's bits, counts...]
  absl::Status Save(std::vector<uint64_t>* words) const override {
    words->push_back(absl::bit_cast<uint64_t>(histogram_.limit()));
    words->insert(words->end(), histogram_.counts().begin(), histogram_.counts().end());
    return absl::OkStatus();
  }
  absl::Status Load(absl::Span<const uint64_t>* words) override {
    const size_t n = 1 + static_cast<size_t>(histogram_.num_bins());
    if (words->size() < n) return absl::InvalidArgumentError("the observer state is truncated");
    QAT_ASSIGN_OR_RETURN(histogram_, Histogram::FromCounts(
                                         absl::bit_cast<double>((*words)[0]),
                                         std::vector<uint64_t>(words->begin() + 1,
                                                               words->begin() + n)));
    words->remove_prefix(n);
    return absl::OkStatus();
  }

 private:
  ObserverOptions options_;
  Histogram histogram_;
};

struct MethodName {
  CalibrationMethod method;
  const char* name;
};
constexpr MethodName kMethodNames[] = {
    {CalibrationMethod::kMinMax, "minmax"},
    {CalibrationMethod::kMovingAverage, "moving-average"},
    {CalibrationMethod::kPercentile, "percentile"},
    {CalibrationMethod::kEntropy, "entropy"},
    {CalibrationMethod::kMse, "mse"},
};

absl::Status ValidateOptions(const ObserverOptions& o) {
  auto bad = [](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("observer options: ", what));
  };
  if (!(o.averaging_constant > 0.0f && o.averaging_constant <= 1.0f)) {
    return bad(absl::StrCat("averaging_constant must be in (0, 1], got ",
                            o.averaging_constant));
  }
  if (!(o.percentile > 0.0 && o.percentile <= 100.0)) {
    return bad(absl::StrCat("percentile must be in (0, 100], got ", o.percentile));
  }
  QAT_RETURN_IF_ERROR(Histogram::Create(o.num_bins).status());
  if (o.num_quantized_bins < 1 || o.num_quantized_bins > o.num_bins / 2) {
    return bad(absl::StrCat("num_quantized_bins must be in [1, num_bins / 2 = ",
                            o.num_bins / 2, "], got ", o.num_quantized_bins));
  }
  if (o.mse_num_candidates < 1) {
    return bad(absl::StrCat("mse_num_candidates must be positive, got ",
                            o.mse_num_candidates));
  }
  const absl::Status range = ValidateQuantRangeHoldsZero(o.mse_quant_range);
  if (!range.ok()) return bad(absl::StrCat("mse_quant_range: ", range.message()));
  return absl::OkStatus();
}

std::unique_ptr<ChannelState> MakeChannelState(const ObserverOptions& options) {
  switch (options.method) {
    case CalibrationMethod::kMinMax:
      return std::make_unique<MinMaxState>();
    case CalibrationMethod::kMovingAverage:
      return std::make_unique<MovingAverageState>(options.averaging_constant);
    default:  // validated: Create succeeds
      return std::make_unique<HistogramState>(
          options, *Histogram::Create(options.num_bins));
  }
}

}  // namespace

const char* CalibrationMethodName(CalibrationMethod method) {
  for (const MethodName& m : kMethodNames) {
    if (m.method == method) return m.name;
  }
  return "unknown";
}

absl::StatusOr<CalibrationMethod> ParseCalibrationMethod(absl::string_view name) {
  for (const MethodName& m : kMethodNames) {
    if (name == m.name) return m.method;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown calibration method '", name,
      "'; expected minmax, moving-average, percentile, entropy or mse"));
}

Observer::Observer(const ObserverOptions& options) : options_(options) {}
Observer::~Observer() = default;
Observer::Observer(Observer&&) noexcept = default;
Observer& Observer::operator=(Observer&&) noexcept = default;

absl::StatusOr<std::unique_ptr<Observer>> MakeObserver(
    const ObserverOptions& options) {
  QAT_RETURN_IF_ERROR(ValidateOptions(options));
  std::unique_ptr<Observer> observer(new Observer(options));
  if (!options.axis.has_value()) QAT_RETURN_IF_ERROR(observer->ResizeChannels(1));
  return observer;
}

absl::Status Observer::ResizeChannels(int64_t channels) {
  if (!channels_.empty()) {
    if (static_cast<int64_t>(channels_.size()) == channels) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "the batch has ", channels, " channels along axis ", *options_.axis,
        ", earlier batches had ", channels_.size()));
  }
  for (int64_t c = 0; c < channels; ++c) {
    channels_.push_back(MakeChannelState(options_));
  }
  data_min_.assign(channels, 0.0f);
  data_max_.assign(channels, 0.0f);
  seen_.assign(channels, 0);
  return absl::OkStatus();
}

absl::Status Observer::Observe(absl::Span<const float> batch) {
  if (options_.axis.has_value()) {
    return absl::FailedPreconditionError(
        "a per-channel observer needs the batch's shape");
  }
  const int64_t shape[] = {static_cast<int64_t>(batch.size())};
  return Observe(shape, batch);
}

absl::Status Observer::Observe(absl::Span<const int64_t> shape,
                               absl::Span<const float> batch) {
  int64_t size = 1;
  for (int64_t d : shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("the batch's shape has a negative dimension ", d));
    }
    size *= d;
  }
  if (size != static_cast<int64_t>(batch.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the batch has ", batch.size(), " values, its shape says ", size));
  }
  ChannelSlice whole{batch.data(), 1, size, size};
  int64_t channels = 1;
  if (options_.axis.has_value()) {
    const int64_t rank = static_cast<int64_t>(shape.size());
    const int64_t axis = *options_.axis < 0 ? *options_.axis + rank : *options_.axis;
    if (axis < 0 || axis >= rank) {
      return absl::InvalidArgumentError(absl::StrCat(
          "axis ", *options_.axis, " is out of range for a batch of rank ", rank));
    }
    channels = shape[axis];
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < axis; ++i) outer *= shape[i];
    for (int64_t i = axis + 1; i < rank; ++i) inner *= shape[i];
    whole = ChannelSlice{batch.data(), outer, inner, channels * inner};
  }
  // Every channel's extremes, in the same pass as the finiteness check, and
  // both before anything changes, so a bad batch is harmless.  Channels
  // last (runs of one value, a MatMul weight along N) take one pass over the
  // rows, the same values in the same order as one channel at a time.
  std::vector<float> lows(static_cast<size_t>(channels)), highs(static_cast<size_t>(channels));
  bool finite = true;
  if (size > 0 && channels > 1 && whole.run_length == 1) {
    finite = kernels::MinMaxColumns(whole.base, whole.runs, channels, lows.data(), highs.data());
  } else if (size > 0) {
    for (int64_t c = 0; c < channels; ++c) {
      const ChannelSlice slice{whole.base + c * whole.run_length, whole.runs,
                               whole.run_length, whole.stride};
      float lo = slice.base[0], hi = slice.base[0];
      for (int64_t r = 0; r < slice.runs; ++r) {
        float run_lo, run_hi;
        finite &= kernels::MinMax(slice.run(r).data(), slice.run_length, &run_lo, &run_hi);
        lo = std::min(lo, run_lo);
        hi = std::max(hi, run_hi);
      }
      lows[c] = lo;
      highs[c] = hi;
    }
  }
  if (!finite) QAT_RETURN_IF_ERROR(CheckFinite(batch));  // names the first bad value
  if (options_.axis.has_value()) QAT_RETURN_IF_ERROR(ResizeChannels(channels));
  if (size == 0) return absl::OkStatus();

  for (int64_t c = 0; c < channels; ++c) {
    const ChannelSlice slice{whole.base + c * whole.run_length, whole.runs,
                             whole.run_length, whole.stride};
    const float lo = lows[c], hi = highs[c];
    QAT_RETURN_IF_ERROR(channels_[c]->Update(slice, lo, hi));
    data_min_[c] = seen_[c] == 0 ? lo : std::min(data_min_[c], lo);
    data_max_[c] = seen_[c] == 0 ? hi : std::max(data_max_[c], hi);
    seen_[c] += static_cast<uint64_t>(slice.runs * slice.run_length);
  }
  return absl::OkStatus();
}

absl::Status Observer::Merge(const Observer& other) {
  const ObserverOptions& a = options_;
  const ObserverOptions& b = other.options_;
  if (a.method != b.method || a.axis != b.axis || a.num_bins != b.num_bins) {
    return absl::InvalidArgumentError(
        "cannot merge observers of another method, axis or bin count");
  }
  if (other.channels_.empty()) return absl::OkStatus();
  QAT_RETURN_IF_ERROR(ResizeChannels(static_cast<int64_t>(other.channels_.size())));
  for (size_t c = 0; c < channels_.size(); ++c) {
    if (other.seen_[c] == 0) continue;
    QAT_RETURN_IF_ERROR(channels_[c]->Merge(*other.channels_[c]));
    data_min_[c] = seen_[c] == 0 ? other.data_min_[c] : std::min(data_min_[c], other.data_min_[c]);
    data_max_[c] = seen_[c] == 0 ? other.data_max_[c] : std::max(data_max_[c], other.data_max_[c]);
    seen_[c] += other.seen_[c];
  }
  return absl::OkStatus();
}

// [channels, then per channel: values seen, min's and max's bits, state]
absl::StatusOr<std::vector<uint64_t>> Observer::SaveState() const {
  std::vector<uint64_t> words = {channels_.size()};
  for (size_t c = 0; c < channels_.size(); ++c) {
    words.push_back(seen_[c]);
    words.push_back(absl::bit_cast<uint32_t>(data_min_[c]));
    words.push_back(absl::bit_cast<uint32_t>(data_max_[c]));
    QAT_RETURN_IF_ERROR(channels_[c]->Save(&words));
  }
  return words;
}

absl::StatusOr<std::unique_ptr<Observer>> Observer::FromState(const ObserverOptions& options,
                                                              absl::Span<const uint64_t> words) {
  QAT_ASSIGN_OR_RETURN(std::unique_ptr<Observer> o, MakeObserver(options));
  auto truncated = [] { return absl::InvalidArgumentError("the observer state is truncated"); };
  if (words.empty()) return truncated();
  const uint64_t channels = words[0];
  words.remove_prefix(1);
  if (channels > words.size()) return truncated();
  if (channels > 0) {
    o->channels_.clear();
    QAT_RETURN_IF_ERROR(o->ResizeChannels(static_cast<int64_t>(channels)));
  }
  for (uint64_t c = 0; c < channels; ++c) {
    if (words.size() < 3) return truncated();
    o->seen_[c] = words[0];
    o->data_min_[c] = absl::bit_cast<float>(static_cast<uint32_t>(words[1]));
    o->data_max_[c] = absl::bit_cast<float>(static_cast<uint32_t>(words[2]));
    words.remove_prefix(3);
    QAT_RETURN_IF_ERROR(o->channels_[c]->Load(&words));
  }
  if (!words.empty()) {
    return absl::InvalidArgumentError("the observer state has words past its end");
  }
  return o;
}

absl::StatusOr<std::vector<ObservedRange>> Observer::Ranges() const {
  if (channels_.empty()) {
    return absl::FailedPreconditionError("the observer has seen no batch");
  }
  std::vector<ObservedRange> ranges;
  ranges.reserve(channels_.size());
  for (size_t c = 0; c < channels_.size(); ++c) {
    if (seen_[c] == 0) {
      return absl::FailedPreconditionError(
          channels_.size() == 1
              ? std::string("the observer has seen no value")
              : absl::StrCat("channel ", c, " has seen no value"));
    }
    QAT_ASSIGN_OR_RETURN(const FloatRange r,
                         channels_[c]->Range(data_min_[c], data_max_[c]));
    ranges.push_back({r.rmin, r.rmax, data_min_[c], data_max_[c]});
  }
  return ranges;
}

}  // namespace qat
