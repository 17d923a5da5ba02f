// The growing histogram: layout, exact growth, and order independence.
#include "qat/histogram.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qat {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

Histogram Make(int bins) {
  auto h = Histogram::Create(bins);
  EXPECT_TRUE(h.ok()) << h.status();
  return *std::move(h);
}

TEST(HistogramTest, RejectsBinCountsThatAreNotPowersOfTwo) {
  for (int bins : {0, 1, 3, 1000, 1 << 25}) {
    auto h = Histogram::Create(bins);
    EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument) << bins;
    EXPECT_THAT(std::string(h.status().message()), HasSubstr("power of two"));
  }
}

TEST(HistogramTest, Layout) {
  Histogram h = Make(8);  // 4 bins a side
  const std::vector<float> values = {0.5f, -0.5f, 1.5f, -3.0f, 0.0f, -0.0f};
  ASSERT_TRUE(h.Add(values).ok());
  // absmax 3 -> limit 4 (the next power of two), width 1.
  EXPECT_EQ(h.limit(), 4.0);
  EXPECT_EQ(h.bin_width(), 1.0);
  EXPECT_EQ(h.edge(0), -4.0);
  EXPECT_EQ(h.edge(8), 4.0);
  // Bins: (-4,-3] (-3,-2] (-2,-1] (-1,0) [0,1) [1,2) [2,3) [3,4).
  EXPECT_THAT(h.counts(), ElementsAre(1, 0, 0, 1, 3, 1, 0, 0));
  EXPECT_THAT(h.MagnitudeCounts(), ElementsAre(4, 1, 0, 1));
  EXPECT_EQ(h.total(), 6u);
}

TEST(HistogramTest, LimitIsStrictlyAboveThePowerOfTwo) {
  Histogram h = Make(8);
  ASSERT_TRUE(h.Add(std::vector<float>{4.0f}).ok());
  EXPECT_EQ(h.limit(), 8.0);  // 4 itself needs [4, 8)
  EXPECT_THAT(h.counts(), ElementsAre(0, 0, 0, 0, 0, 0, 1, 0));
}

TEST(HistogramTest, AllZerosGetTheSmallestNormalLimit) {
  Histogram h = Make(8);
  ASSERT_TRUE(h.Add(std::vector<float>{0.0f, 0.0f}).ok());
  EXPECT_EQ(h.limit(), static_cast<double>(std::numeric_limits<float>::min()));
  ASSERT_TRUE(h.Add(std::vector<float>{3.0f}).ok());  // 128 doublings at once
  EXPECT_EQ(h.limit(), 4.0);
  EXPECT_THAT(h.counts(), ElementsAre(0, 0, 0, 0, 2, 0, 0, 1));
}

TEST(HistogramTest, GrowthMergesBinsPairwise) {
  Histogram h = Make(8);
  ASSERT_TRUE(h.Add(std::vector<float>{0.25f, 0.75f, -0.6f, 1.9f}).ok());
  EXPECT_EQ(h.limit(), 2.0);  // width 0.5
  EXPECT_THAT(h.counts(), ElementsAre(0, 0, 1, 0, 1, 1, 0, 1));
  ASSERT_TRUE(h.Add(std::vector<float>{5.0f}).ok());  // limit 8, width 2
  EXPECT_EQ(h.limit(), 8.0);
  EXPECT_THAT(h.counts(), ElementsAre(0, 0, 0, 1, 3, 0, 1, 0));
}

TEST(HistogramTest, RejectsNonFiniteValuesAndAddsNothing) {
  Histogram h = Make(16);
  ASSERT_TRUE(h.Add(std::vector<float>{1.0f}).ok());
  for (float bad : {std::numeric_limits<float>::quiet_NaN(),
                    std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    const absl::Status s = h.Add(std::vector<float>{2.0f, 3.0f, bad});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()), HasSubstr("value at index 2 is"));
  }
  EXPECT_EQ(h.total(), 1u);
  EXPECT_EQ(h.limit(), 2.0);
}

// Values over many magnitudes, so that growth happens many times.
std::vector<float> WideData(uint32_t seed, int n) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-30, 30);
  std::vector<float> v(n);
  for (float& x : v) x = std::ldexp(normal(rng), exponent(rng));
  v[n / 2] = 0.0f;
  v[n / 3] = std::numeric_limits<float>::denorm_min();
  return v;
}

TEST(HistogramTest, BatchingAndOrderDoNotChangeTheResult) {
  const std::vector<float> data = WideData(7, 20000);
  Histogram whole = Make(256);
  ASSERT_TRUE(whole.Add(data).ok());

  std::mt19937 rng(11);
  for (int trial = 0; trial < 5; ++trial) {
    std::vector<float> shuffled = data;
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    if (trial == 0) std::sort(shuffled.begin(), shuffled.end(),
                              [](float a, float b) { return std::fabs(a) < std::fabs(b); });
    Histogram batched = Make(256);
    std::uniform_int_distribution<int> batch(1, 700);
    for (size_t at = 0; at < shuffled.size();) {
      const size_t n = std::min<size_t>(batch(rng), shuffled.size() - at);
      ASSERT_TRUE(batched.Add(absl::MakeConstSpan(shuffled).subspan(at, n)).ok());
      at += n;
    }
    SCOPED_TRACE(trial);
    EXPECT_EQ(batched.limit(), whole.limit());
    EXPECT_EQ(batched.total(), whole.total());
    EXPECT_TRUE(std::equal(batched.counts().begin(), batched.counts().end(),
                           whole.counts().begin()));
  }
}

TEST(HistogramTest, EveryValueLandsInTheBinThatSpansIt) {
  const std::vector<float> data = WideData(3, 5000);
  Histogram h = Make(64);
  ASSERT_TRUE(h.Add(data).ok());
  // Rebuild the counts from the documented bin intervals.
  std::vector<uint64_t> expected(64, 0);
  for (float x : data) {
    int found = -1;
    for (int i = 0; i < 64; ++i) {
      const bool inside = x < 0 ? (x > h.edge(i) && x <= h.edge(i + 1))
                                : (x >= h.edge(i) && x < h.edge(i + 1));
      if (inside) found = i;
    }
    ASSERT_GE(found, 0) << x;
    ++expected[found];
  }
  EXPECT_TRUE(std::equal(expected.begin(), expected.end(), h.counts().begin()));
}

}  // namespace
}  // namespace qat
