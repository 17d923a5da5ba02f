// Observers: each method on data with a known answer, per channel against
// per tensor, batching independence, errors, and speed.
#include "qat/observer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "qat/fake_quant.h"
#include "qat/quant_params.h"

namespace qat {
namespace {

using ::testing::HasSubstr;

const CalibrationMethod kAllMethods[] = {
    CalibrationMethod::kMinMax, CalibrationMethod::kMovingAverage,
    CalibrationMethod::kPercentile, CalibrationMethod::kEntropy,
    CalibrationMethod::kMse};

std::unique_ptr<Observer> Make(const ObserverOptions& options) {
  auto o = MakeObserver(options);
  EXPECT_TRUE(o.ok()) << o.status();
  return o.ok() ? *std::move(o) : nullptr;
}

std::unique_ptr<Observer> Make(CalibrationMethod method) {
  ObserverOptions options;
  options.method = method;
  return Make(options);
}

ObservedRange RangeOf(const Observer& o) {
  auto r = o.Ranges();
  EXPECT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->size(), 1u);
  return r->at(0);
}

// n values evenly spread over (lo, hi): the midpoints of n equal cells.
std::vector<float> Uniform(float lo, float hi, int n) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = lo + (hi - lo) * (i + 0.5f) / n;
  return v;
}

// Standard normal samples plus `outliers` values at +-outlier.
std::vector<float> GaussianWithOutliers(int n, int outliers, float outlier) {
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  for (int i = 0; i < outliers; ++i) v[i * 97] = (i % 2 ? -outlier : outlier);
  return v;
}

// Mean squared FakeQuant error of data for a range, with the real kernel.
double FakeQuantError(const std::vector<float>& data, float rmin, float rmax,
                      QuantRange range, bool symmetric) {
  auto p = ComputeQuantParams(rmin, rmax, range, symmetric);
  EXPECT_TRUE(p.ok());
  std::vector<float> y(data.size());
  EXPECT_TRUE(FakeQuantPerTensor(data, absl::MakeSpan(y), {},
                                 {p->scale, static_cast<float>(p->zero_point), range})
                  .ok());
  double sum = 0.0;
  for (size_t i = 0; i < data.size(); ++i) {
    const double e = static_cast<double>(y[i]) - data[i];
    sum += e * e;
  }
  return sum / data.size();
}

TEST(ObserverTest, MethodNamesRoundTrip) {
  for (CalibrationMethod m : kAllMethods) {
    auto parsed = ParseCalibrationMethod(CalibrationMethodName(m));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, m);
  }
  EXPECT_STREQ(CalibrationMethodName(CalibrationMethod::kMovingAverage),
               "moving-average");
  auto bad = ParseCalibrationMethod("kl");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("expected minmax, moving-average, percentile, entropy or mse"));
}

TEST(ObserverTest, RejectsBadOptions) {
  auto expect_bad = [](ObserverOptions o, const std::string& fragment) {
    auto made = MakeObserver(o);
    EXPECT_EQ(made.status().code(), absl::StatusCode::kInvalidArgument) << fragment;
    EXPECT_THAT(std::string(made.status().message()), HasSubstr(fragment));
  };
  ObserverOptions o;
  o.averaging_constant = 0.0f;
  expect_bad(o, "averaging_constant must be in (0, 1], got 0");
  o = {};
  o.percentile = 100.5;
  expect_bad(o, "percentile must be in (0, 100]");
  o = {};
  o.num_bins = 1000;
  expect_bad(o, "power of two");
  o = {};
  o.num_bins = 64;
  o.num_quantized_bins = 33;
  expect_bad(o, "num_quantized_bins must be in [1, num_bins / 2 = 32], got 33");
  o = {};
  o.mse_num_candidates = 0;
  expect_bad(o, "mse_num_candidates must be positive");
  o = {};
  o.mse_quant_range = QuantRange{1, 10};
  expect_bad(o, "mse_quant_range");
}

TEST(ObserverTest, MinMaxTracksTheExtremes) {
  auto o = Make(CalibrationMethod::kMinMax);
  ASSERT_TRUE(o->Observe(std::vector<float>{1.0f, -2.0f, 0.5f}).ok());
  ASSERT_TRUE(o->Observe(std::vector<float>{3.0f, 0.0f}).ok());
  ASSERT_TRUE(o->Observe(std::vector<float>{}).ok());  // empty: no change
  const ObservedRange r = RangeOf(*o);
  EXPECT_EQ(r.rmin, -2.0f);
  EXPECT_EQ(r.rmax, 3.0f);
  EXPECT_EQ(r.data_min, -2.0f);
  EXPECT_EQ(r.data_max, 3.0f);
}

TEST(ObserverTest, MovingAverageFirstBatchInitializes) {
  ObserverOptions options;
  options.method = CalibrationMethod::kMovingAverage;
  options.averaging_constant = 0.5f;
  auto o = Make(options);
  ASSERT_TRUE(o->Observe(std::vector<float>{-1.0f, 1.0f}).ok());
  EXPECT_EQ(RangeOf(*o).rmin, -1.0f);  // the first batch, not 0.5 * it
  EXPECT_EQ(RangeOf(*o).rmax, 1.0f);
  // min: -1 + 0.5 * (-3 - -1) = -2;  max: 1 + 0.5 * (2 - 1) = 1.5.
  ASSERT_TRUE(o->Observe(std::vector<float>{-3.0f, 2.0f, 0.0f}).ok());
  EXPECT_EQ(RangeOf(*o).rmin, -2.0f);
  EXPECT_EQ(RangeOf(*o).rmax, 1.5f);
  // min: -2 + 0.5 * (0 - -2) = -1;  max: 1.5 + 0.5 * (0.5 - 1.5) = 1.
  ASSERT_TRUE(o->Observe(std::vector<float>{0.0f, 0.5f}).ok());
  const ObservedRange r = RangeOf(*o);
  EXPECT_EQ(r.rmin, -1.0f);
  EXPECT_EQ(r.rmax, 1.0f);
  EXPECT_EQ(r.data_min, -3.0f);  // the exact extremes are still tracked
  EXPECT_EQ(r.data_max, 2.0f);
}

TEST(ObserverTest, MovingAverageDefaultConstant) {
  auto o = Make(CalibrationMethod::kMovingAverage);
  EXPECT_EQ(o->options().averaging_constant, 0.01f);
  ASSERT_TRUE(o->Observe(std::vector<float>{0.0f, 1.0f}).ok());
  ASSERT_TRUE(o->Observe(std::vector<float>{0.0f, 2.0f}).ok());
  EXPECT_EQ(RangeOf(*o).rmax, 1.0f + 0.01f * (2.0f - 1.0f));
}

TEST(ObserverTest, PercentileOnUniformData) {
  // |x| is uniform on (0, 1): its 99th percentile is 0.99.
  ObserverOptions options;
  options.method = CalibrationMethod::kPercentile;
  options.percentile = 99.0;
  options.symmetric = true;
  auto o = Make(options);
  ASSERT_TRUE(o->Observe(Uniform(-1.0f, 1.0f, 200000)).ok());
  ObservedRange r = RangeOf(*o);
  EXPECT_NEAR(r.rmax, 0.99f, 1e-4f);
  EXPECT_NEAR(r.rmin, -0.99f, 1e-4f);

  // Asymmetric, uniform on (0, 10): 1% is cut from each end.
  options.symmetric = false;
  options.percentile = 98.0;
  o = Make(options);
  ASSERT_TRUE(o->Observe(Uniform(0.0f, 10.0f, 200000)).ok());
  r = RangeOf(*o);
  EXPECT_NEAR(r.rmin, 0.1f, 1e-3f);
  EXPECT_NEAR(r.rmax, 9.9f, 1e-3f);
}

TEST(ObserverTest, PercentileNeverLeavesTheData) {
  ObserverOptions options;
  options.method = CalibrationMethod::kPercentile;
  options.symmetric = true;
  auto o = Make(options);
  // All values positive: [-t, t] is clipped to [min, max].
  ASSERT_TRUE(o->Observe(Uniform(2.0f, 3.0f, 1000)).ok());
  const ObservedRange r = RangeOf(*o);
  EXPECT_EQ(r.rmin, r.data_min);
  EXPECT_LE(r.rmax, r.data_max);
  EXPECT_GT(r.rmax, 2.99f);
}

TEST(ObserverTest, EntropyWorkedExample) {
  // Magnitude histogram h = [4, 2, 0, 1] (limit 4, width 1), with
  // num_quantized_bins = 2, so the candidates are i = 2, 3, 4 (N = 7):
  //   i = 2: P = [4, 2+1], Q = [4, 2]           (groups of 1 bin)
  //          KL = 4/7 ln(6/7) + 3/7 ln(9/7)          = 0.0196
  //   i = 3: P = [4, 2, 0+1]; groups [0], [1, 2]: Q = [4, 1, 1]
  //          KL = 4/7 ln(6/7) + 2/7 ln(12/7) + 1/7 ln(6/7) = 0.0439
  //   i = 4: P = [4, 2, 0, 1]; groups [0, 1], [2, 3]: Q = [3, 3, 0, 1]
  //          KL = 4/7 ln(4/3) + 2/7 ln(2/3)          = 0.0485
  // so t = 2, and [-2, 2] clipped to the data [0.5, 3.5] is [0.5, 2].
  ObserverOptions options;
  options.method = CalibrationMethod::kEntropy;
  options.num_bins = 8;
  options.num_quantized_bins = 2;
  auto o = Make(options);
  ASSERT_TRUE(o->Observe(std::vector<float>{0.5f, 0.5f, 0.5f, 0.5f, 1.5f, 1.5f,
                                            3.5f})
                  .ok());
  const ObservedRange r = RangeOf(*o);
  EXPECT_EQ(r.rmin, 0.5f);
  EXPECT_EQ(r.rmax, 2.0f);
}

TEST(ObserverTest, EntropyKeepsUniformDataWhole) {
  auto o = Make(CalibrationMethod::kEntropy);
  ASSERT_TRUE(o->Observe(Uniform(-1.0f, 1.0f, 100000)).ok());
  const ObservedRange r = RangeOf(*o);
  EXPECT_GT(r.rmax, 0.95f);
  EXPECT_LT(r.rmin, -0.95f);
}

TEST(ObserverTest, MseKeepsUniformDataWhole) {
  // For uniform data clipping costs more than the finer grid saves.
  ObserverOptions options;
  options.method = CalibrationMethod::kMse;
  options.symmetric = true;
  options.mse_quant_range = QuantRange::Int8Narrow();
  auto o = Make(options);
  ASSERT_TRUE(o->Observe(Uniform(-1.0f, 1.0f, 100000)).ok());
  const ObservedRange r = RangeOf(*o);
  EXPECT_EQ(r.rmin, r.data_min);
  EXPECT_EQ(r.rmax, r.data_max);
}

TEST(ObserverTest, HistogramMethodsClipOutliersMinMaxDoesNot) {
  // N(0, 1) with one outlier at +12 and one at -12 in a million values.
  const std::vector<float> data = GaussianWithOutliers(1000000, 2, 12.0f);
  ObserverOptions options;
  options.symmetric = true;
  options.mse_quant_range = QuantRange::Int8Narrow();
  for (CalibrationMethod m : kAllMethods) {
    SCOPED_TRACE(CalibrationMethodName(m));
    options.method = m;
    auto o = Make(options);
    for (size_t at = 0; at < data.size(); at += 50000) {
      ASSERT_TRUE(o->Observe(absl::MakeConstSpan(data).subspan(at, 50000)).ok());
    }
    const ObservedRange r = RangeOf(*o);
    EXPECT_EQ(r.data_max, 12.0f);
    EXPECT_EQ(r.data_min, -12.0f);
    switch (m) {
      case CalibrationMethod::kMinMax:
        EXPECT_EQ(r.rmax, 12.0f);
        break;
      case CalibrationMethod::kMovingAverage:
        EXPECT_GT(r.rmax, 4.0f);  // batch maxima, some with an outlier
        break;
      case CalibrationMethod::kPercentile:  // 99.999% of |x|: about 4.4
        EXPECT_GT(r.rmax, 4.0f);
        EXPECT_LT(r.rmax, 5.0f);
        break;
      case CalibrationMethod::kMse:
        // Clipping both outliers to a costs 2 (12 - a)^2 / 10^6; the grid's
        // rounding costs (2a / 254)^2 / 12: the sum is least near a = 4.
        EXPECT_GT(r.rmax, 3.0f);
        EXPECT_LT(r.rmax, 6.0f);
        break;
      default:  // entropy
        EXPECT_GT(r.rmax, 2.5f);
        EXPECT_LT(r.rmax, 8.0f);
        break;
    }
    if (m != CalibrationMethod::kMovingAverage) {
      EXPECT_EQ(r.rmin, -r.rmax);
    }
  }
}

TEST(ObserverTest, MseChoiceBeatsMinMaxOnTheRealKernel) {
  const std::vector<float> data = GaussianWithOutliers(1000000, 2, 12.0f);
  for (bool symmetric : {true, false}) {
    SCOPED_TRACE(symmetric);
    ObserverOptions options;
    options.method = CalibrationMethod::kMse;
    options.symmetric = symmetric;
    options.mse_quant_range = symmetric ? QuantRange::Int8Narrow() : QuantRange::UInt8();
    auto o = Make(options);
    ASSERT_TRUE(o->Observe(data).ok());
    const ObservedRange r = RangeOf(*o);
    const QuantRange q = options.mse_quant_range;
    const double chosen = FakeQuantError(data, r.rmin, r.rmax, q, symmetric);
    const double minmax = FakeQuantError(data, -12.0f, 12.0f, q, symmetric);
    EXPECT_LT(chosen, 0.5 * minmax);
    // No candidate of the family does much better on the real data.
    double best = std::numeric_limits<double>::infinity();
    for (int k = 1; k <= 50; ++k) {
      const float f = k / 50.0f;
      best = std::min(best, FakeQuantError(data, -12.0f * f, 12.0f * f, q, symmetric));
    }
    EXPECT_LT(chosen, 1.05 * best);
  }
}

TEST(ObserverTest, PerChannelEqualsPerTensorOnEachSlice) {
  // Batches of shape [2, 3, 5], channels along axis 1 (and -2).
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> batches(4, std::vector<float>(30));
  for (auto& b : batches) {
    for (size_t i = 0; i < b.size(); ++i) b[i] = normal(rng) * (1 + (i / 5) % 3);
  }
  const std::vector<int64_t> shape = {2, 3, 5};
  for (CalibrationMethod m : kAllMethods) {
    for (int64_t axis : {1, -2}) {
      SCOPED_TRACE(testing::Message() << CalibrationMethodName(m) << " axis " << axis);
      ObserverOptions options;
      options.method = m;
      options.num_bins = 64;
      options.num_quantized_bins = 8;
      options.axis = axis;
      auto per_channel = Make(options);
      options.axis.reset();
      std::vector<std::unique_ptr<Observer>> per_tensor;
      for (int c = 0; c < 3; ++c) per_tensor.push_back(Make(options));
      for (const auto& b : batches) {
        ASSERT_TRUE(per_channel->Observe(shape, b).ok());
        for (int c = 0; c < 3; ++c) {
          std::vector<float> slice;
          for (int o = 0; o < 2; ++o) {
            for (int i = 0; i < 5; ++i) slice.push_back(b[(o * 3 + c) * 5 + i]);
          }
          ASSERT_TRUE(per_tensor[c]->Observe(slice).ok());
        }
      }
      auto ranges = per_channel->Ranges();
      ASSERT_TRUE(ranges.ok());
      ASSERT_EQ(ranges->size(), 3u);
      for (int c = 0; c < 3; ++c) {
        const ObservedRange expected = RangeOf(*per_tensor[c]);
        EXPECT_EQ((*ranges)[c].rmin, expected.rmin) << c;
        EXPECT_EQ((*ranges)[c].rmax, expected.rmax) << c;
        EXPECT_EQ((*ranges)[c].data_min, expected.data_min) << c;
        EXPECT_EQ((*ranges)[c].data_max, expected.data_max) << c;
      }
    }
  }
}

TEST(ObserverTest, HistogramMethodsIgnoreBatchingAndOrder) {
  std::vector<float> data = GaussianWithOutliers(50000, 6, 20.0f);
  for (CalibrationMethod m : {CalibrationMethod::kPercentile, CalibrationMethod::kEntropy,
                              CalibrationMethod::kMse}) {
    SCOPED_TRACE(CalibrationMethodName(m));
    auto whole = Make(m);
    ASSERT_TRUE(whole->Observe(data).ok());
    std::vector<float> shuffled = data;
    std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(9));
    auto batched = Make(m);
    for (size_t at = 0; at < shuffled.size(); at += 999) {
      const size_t n = std::min<size_t>(999, shuffled.size() - at);
      ASSERT_TRUE(batched->Observe(absl::MakeConstSpan(shuffled).subspan(at, n)).ok());
    }
    EXPECT_EQ(RangeOf(*whole).rmin, RangeOf(*batched).rmin);
    EXPECT_EQ(RangeOf(*whole).rmax, RangeOf(*batched).rmax);
  }
}

TEST(ObserverTest, ConstantDataGivesAPointRange) {
  for (CalibrationMethod m : kAllMethods) {
    SCOPED_TRACE(CalibrationMethodName(m));
    auto o = Make(m);
    ASSERT_TRUE(o->Observe(std::vector<float>(100, 0.0f)).ok());
    const ObservedRange r = RangeOf(*o);
    EXPECT_EQ(r.rmin, 0.0f);
    EXPECT_EQ(r.rmax, 0.0f);
  }
}

TEST(ObserverTest, RejectsNonFiniteBatchesAndStaysUnchanged) {
  for (CalibrationMethod m : kAllMethods) {
    SCOPED_TRACE(CalibrationMethodName(m));
    auto o = Make(m);
    ASSERT_TRUE(o->Observe(std::vector<float>{-1.0f, 1.0f}).ok());
    const ObservedRange before = RangeOf(*o);
    for (float bad : {std::numeric_limits<float>::quiet_NaN(),
                      std::numeric_limits<float>::infinity()}) {
      const absl::Status s = o->Observe(std::vector<float>{5.0f, bad});
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(std::string(s.message()), HasSubstr("value at index 1 is"));
    }
    EXPECT_EQ(RangeOf(*o).rmax, before.rmax);
    EXPECT_EQ(RangeOf(*o).data_max, 1.0f);
  }
}

TEST(ObserverTest, ShapeAndChannelErrors) {
  ObserverOptions options;
  options.axis = 0;
  auto o = Make(options);
  std::vector<float> six(6, 1.0f);
  EXPECT_EQ(o->Observe(six).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(o->Ranges().status().code(), absl::StatusCode::kFailedPrecondition);
  const std::vector<int64_t> s23 = {2, 3}, s32 = {3, 2}, s22 = {2, 2};
  ASSERT_TRUE(o->Observe(s23, six).ok());
  absl::Status s = o->Observe(s32, six);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("the batch has 3 channels along axis 0, earlier batches had 2"));
  s = o->Observe(s22, six);
  EXPECT_THAT(std::string(s.message()), HasSubstr("the batch has 6 values, its shape says 4"));
  options.axis = 2;
  auto bad_axis = Make(options);
  s = bad_axis->Observe(s23, six);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("axis 2 is out of range for a batch of rank 2"));

  auto empty = Make(CalibrationMethod::kPercentile);
  EXPECT_THAT(std::string(empty->Ranges().status().message()),
              HasSubstr("has seen no value"));
}

}  // namespace
}  // namespace qat
