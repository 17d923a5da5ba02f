// LSQ / LSQ+ gradients of the scale and the zero point, checked against the
// closed form and against central finite differences.
//
// What finite differences can and cannot check: FakeQuant's rounding is
// piecewise constant, so the true derivative of y with respect to the scale is
// round(x/s) inside the range, while LSQ's straight-through estimator uses
// round(x/s) - x/s (it treats d round(u)/du as 1).  The tests therefore check
//  - outside the range, where y = (qmin or qmax - z) * s is smooth, the scale
//    gradient equals the finite difference exactly;
//  - inside the range, the scale gradient equals the finite difference of the
//    true function plus the straight-through term -x/s;
//  - the zero-point gradient equals the finite difference everywhere.
// Inputs are kept away from the discontinuities: x/s near a rounding tie, and
// round(x/s) + z on a range end.
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "qat/fake_quant.h"

namespace qat {
namespace {

// FakeQuant in double, with a real-valued zero point, for finite differences.
double FakeQuantDouble(double x, double s, double z, QuantRange r) {
  const double v = std::nearbyint(x / s) + z;
  const double c = std::min<double>(std::max<double>(v, r.quant_min),
                                    r.quant_max);
  return (c - z) * s;
}

double Loss(const std::vector<float>& x, const std::vector<float>& dy,
            double s, double z, QuantRange r) {
  double sum = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    sum += dy[i] * FakeQuantDouble(x[i], s, z, r);
  }
  return sum;
}

double FiniteDifferenceScale(const std::vector<float>& x,
                             const std::vector<float>& dy, double s, double z,
                             QuantRange r) {
  const double h = s * 1e-6;
  return (Loss(x, dy, s + h, z, r) - Loss(x, dy, s - h, z, r)) / (2 * h);
}

double FiniteDifferenceZeroPoint(const std::vector<float>& x,
                                 const std::vector<float>& dy, double s,
                                 double z, QuantRange r) {
  const double h = 1e-4;
  return (Loss(x, dy, s, z + h, r) - Loss(x, dy, s, z - h, r)) / (2 * h);
}

// Random inputs whose x/s stays 0.05 away from rounding ties and whose
// rounded value + z stays off the range ends.  `inside`: all in range;
// otherwise all outside.  mixed: half each.
enum class Where { kInside, kOutside, kMixed };

std::vector<float> SafeInputs(size_t n, float s, float z, QuantRange r,
                              Where where, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> in(r.quant_min - z + 0.6,
                                            r.quant_max - z - 0.6);
  std::uniform_real_distribution<double> frac(-0.45, 0.45);
  std::uniform_real_distribution<double> beyond(1.6, 40.0);
  std::vector<float> x;
  while (x.size() < n) {
    const bool want_inside =
        where == Where::kInside || (where == Where::kMixed && x.size() % 2);
    double u;  // target x / s
    if (want_inside) {
      u = std::nearbyint(in(rng)) + frac(rng);
    } else {
      const double b = beyond(rng);
      u = (x.size() % 4 < 2) ? r.quant_max - z + b : r.quant_min - z - b;
      u = std::nearbyint(u) + frac(rng);
    }
    const float xf = static_cast<float>(u * s);
    const double t = static_cast<double>(xf) / s;
    if (std::fabs(t - std::nearbyint(t)) > 0.45) continue;  // near a tie
    const double v = std::nearbyint(t) + z;
    if (v == r.quant_min || v == r.quant_max) continue;  // on a range end
    x.push_back(xf);
  }
  return x;
}

std::vector<float> RandomGrads(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> dy(n);
  for (float& v : dy) v = normal(rng);
  return dy;
}

struct Case {
  float scale;
  float zero_point;
  QuantRange range;
};

const Case kCases[] = {{0.05f, 0.0f, QuantRange::Int8()},
                       {0.013f, 17.0f, QuantRange::UInt8()},
                       {0.2f, -2.0f, QuantRange::Int4()},
                       {0.5f, 0.0f, QuantRange::Int8Narrow()}};

// Safe inputs for one case, random upstream gradients, and the kernel's
// LSQ gradients for them (gradient scale 1).
struct Sample {
  std::vector<float> x;
  std::vector<float> dy;
  LsqGradients grads;
};

Sample MakeSample(const Case& c, Where where, uint32_t seed) {
  Sample s;
  s.x = SafeInputs(2000, c.scale, c.zero_point, c.range, where, seed);
  s.dy = RandomGrads(s.x.size(), seed + 1);
  auto g = FakeQuantLsqGradPerTensor(s.x, s.dy, {},
                                     {c.scale, c.zero_point, c.range});
  EXPECT_TRUE(g.ok()) << g.status();
  if (g.ok()) s.grads = *g;
  return s;
}

TEST(LsqGradTest, ScaleOutsideRangeMatchesFiniteDifferences) {
  for (const Case& c : kCases) {
    const Sample s = MakeSample(c, Where::kOutside, 1);
    const double fd =
        FiniteDifferenceScale(s.x, s.dy, c.scale, c.zero_point, c.range);
    EXPECT_NEAR(s.grads.scale, fd, 1e-5 * std::fabs(fd) + 1e-4);
  }
}

TEST(LsqGradTest, ScaleInsideRangeIsFiniteDifferencePlusStraightThroughTerm) {
  for (const Case& c : kCases) {
    const Sample s = MakeSample(c, Where::kInside, 3);
    const double fd =
        FiniteDifferenceScale(s.x, s.dy, c.scale, c.zero_point, c.range);
    // The straight-through term per element: s * d(x/s)/ds = -x/s.
    double ste = 0.0;
    for (size_t i = 0; i < s.x.size(); ++i) {
      ste += s.dy[i] * -(static_cast<double>(s.x[i]) / c.scale);
    }
    EXPECT_NEAR(s.grads.scale, fd + ste,
                1e-4 * (std::fabs(fd) + std::fabs(ste)));
  }
}

TEST(LsqGradTest, ZeroPointMatchesFiniteDifferences) {
  for (const Case& c : kCases) {
    const Sample s = MakeSample(c, Where::kMixed, 5);
    const double fd =
        FiniteDifferenceZeroPoint(s.x, s.dy, c.scale, c.zero_point, c.range);
    EXPECT_NEAR(s.grads.zero_point, fd, 1e-5 * std::fabs(fd) + 1e-5);
    EXPECT_NE(s.grads.zero_point, 0.0f);  // the mixed inputs do saturate
  }
}

// The closed form, computed independently in double with a plain sum.
TEST(LsqGradTest, MatchesClosedForm) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> x(50000), dy = RandomGrads(50000, 8), dx(50000);
  for (float& v : x) v = normal(rng);
  for (const Case& c : kCases) {
    const float g_scale = 0.125f;
    auto g = FakeQuantLsqGradPerTensor(x, dy, absl::MakeSpan(dx),
                                       {c.scale, c.zero_point, c.range},
                                       g_scale);
    ASSERT_TRUE(g.ok()) << g.status();
    double ds = 0.0, dz = 0.0;
    for (size_t i = 0; i < x.size(); ++i) {
      const float u = x[i] / c.scale;
      const float r = std::nearbyint(u);
      const float v = r + c.zero_point;
      double local;
      bool inside = false;
      if (v < c.range.quant_min) {
        local = c.range.quant_min - c.zero_point;
        dz += dy[i] * -static_cast<double>(c.scale);
      } else if (v > c.range.quant_max) {
        local = c.range.quant_max - c.zero_point;
        dz += dy[i] * -static_cast<double>(c.scale);
      } else {
        local = static_cast<double>(r) - u;
        inside = true;
      }
      ds += dy[i] * local;
      ASSERT_EQ(dx[i], inside ? dy[i] : 0.0f) << "dx at " << i;
    }
    EXPECT_NEAR(g->scale, ds * g_scale, 1e-6 * std::fabs(ds * g_scale) + 1e-6);
    EXPECT_NEAR(g->zero_point, dz * g_scale,
                1e-6 * std::fabs(dz * g_scale) + 1e-6);
  }
}

TEST(LsqGradTest, GradScaleMultipliesBothGradients) {
  const auto x = SafeInputs(999, 0.05f, 3.0f, QuantRange::Int8(),
                            Where::kMixed, 9);
  const auto dy = RandomGrads(x.size(), 10);
  const FakeQuantParams p{0.05f, 3.0f, QuantRange::Int8()};
  auto one = FakeQuantLsqGradPerTensor(x, dy, {}, p, 1.0f);
  auto quarter = FakeQuantLsqGradPerTensor(x, dy, {}, p, 0.25f);
  ASSERT_TRUE(one.ok() && quarter.ok());
  // A power of two scales exactly.
  EXPECT_EQ(quarter->scale, one->scale * 0.25f);
  EXPECT_EQ(quarter->zero_point, one->zero_point * 0.25f);
}

TEST(LsqGradTest, PerChannelMatchesFiniteDifferencesPerChannel) {
  // [channels = 3, 400] along axis 0, each channel with its own grid.
  const std::vector<float> scales = {0.05f, 0.02f, 0.3f};
  const std::vector<float> zps = {0.0f, -7.0f, 4.0f};
  const QuantRange r = QuantRange::Int8();
  std::vector<float> x, dy;
  std::vector<std::vector<float>> xs, dys;
  for (int c = 0; c < 3; ++c) {
    xs.push_back(SafeInputs(400, scales[c], zps[c], r, Where::kOutside, 20 + c));
    dys.push_back(RandomGrads(400, 30 + c));
    x.insert(x.end(), xs[c].begin(), xs[c].end());
    dy.insert(dy.end(), dys[c].begin(), dys[c].end());
  }
  std::vector<float> sg(3), zg(3);
  ASSERT_TRUE(FakeQuantLsqGradPerChannel({3, 400}, x, dy, {},
                                         absl::MakeSpan(sg), absl::MakeSpan(zg),
                                         {scales, zps, 0, r})
                  .ok());
  for (int c = 0; c < 3; ++c) {
    const double fds = FiniteDifferenceScale(xs[c], dys[c], scales[c], zps[c], r);
    const double fdz =
        FiniteDifferenceZeroPoint(xs[c], dys[c], scales[c], zps[c], r);
    EXPECT_NEAR(sg[c], fds, 1e-5 * std::fabs(fds) + 1e-4) << "channel " << c;
    EXPECT_NEAR(zg[c], fdz, 1e-5 * std::fabs(fdz) + 1e-5) << "channel " << c;
  }
}

}  // namespace
}  // namespace qat
