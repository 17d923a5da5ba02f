// The SIMD GEMM variants against SgemmReference: bit for bit, for every
// transpose, for sizes around the micro-tile, tile and depth-block edges, and
// through Gemm() with every thread count.
#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/sgemm_variants.h"
#include "ops/gemm.h"

namespace qat {
namespace {

std::vector<float> Random(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
  std::vector<float> v(n);
  for (float& x : v) x = uniform(rng);
  return v;
}

// C = op(A) * op(B) by the reference, with A and B stored as GemmShape says.
std::vector<float> Reference(const exec::GemmShape& s, const float* a, const float* b) {
  std::vector<float> c(s.m * s.n);
  kernels::SgemmTile t{};
  t.rows = s.m;
  t.cols = s.n;
  t.depth = s.k;
  t.a = a;
  t.a_row = s.trans_a ? 1 : s.k;
  t.a_col = s.trans_a ? s.m : 1;
  t.b = b;
  t.b_row = s.trans_b ? 1 : s.n;
  t.b_col = s.trans_b ? s.k : 1;
  t.c = c.data();
  t.ldc = s.n;
  kernels::SgemmReference(t);
  return c;
}

TEST(SgemmTest, EveryVariantMatchesTheReferenceBitForBit) {
  const auto variants = kernels::SupportedSgemmVariants();
  if (variants.empty()) GTEST_SKIP() << "no SIMD GEMM variant runs on this CPU";
  for (const kernels::SgemmKernels* kernel : variants) {
    for (int64_t m : {1, 5, 6, 8, 9, 64}) {
      for (int64_t n : {1, 15, 16, 33, 128}) {
        for (int64_t k : {1, 7, 256, 300, 513}) {
          for (bool ta : {false, true}) {
            for (bool tb : {false, true}) {
              const exec::GemmShape s{m, k, n, ta, tb};
              const std::vector<float> a = Random(m * k, 1), b = Random(k * n, 2);
              const std::vector<float> ref = Reference(s, a.data(), b.data());
              std::vector<float> c(m * n, -7.0f);
              exec::SgemmTiles(nullptr, *kernel, s, a.data(), b.data(), c.data());
              ASSERT_EQ(std::memcmp(c.data(), ref.data(), c.size() * sizeof(float)), 0)
                  << kernel->name << " m=" << m << " n=" << n << " k=" << k << " ta=" << ta
                  << " tb=" << tb;
              // The same with B packed ahead, as for constant weights.
              exec::PackedGemmB packed;
              exec::PackGemmB(nullptr, *kernel, s, b.data(), &packed);
              std::fill(c.begin(), c.end(), -7.0f);
              exec::SgemmTiles(nullptr, *kernel, s, a.data(), b.data(), c.data(), &packed);
              ASSERT_EQ(std::memcmp(c.data(), ref.data(), c.size() * sizeof(float)), 0)
                  << kernel->name << " packed B, m=" << m << " n=" << n << " k=" << k
                  << " ta=" << ta << " tb=" << tb;
            }
          }
        }
      }
    }
  }
}

// Many tiles in both directions, and the same bits for 1, 2 and 3 threads.
TEST(SgemmTest, GemmIsTheSameForEveryThreadCount) {
  const exec::GemmShape s{130, 300, 700, false, true};
  const std::vector<float> a = Random(s.m * s.k, 3), b = Random(s.k * s.n, 4);
  const std::vector<float> ref = Reference(s, a.data(), b.data());
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    std::vector<float> c(s.m * s.n);
    exec::PackedGemmB cache;
    exec::Gemm(&pool, s, a.data(), b.data(), c.data(), threads == 3 ? &cache : nullptr);
    if (kernels::SelectedSgemmKernels() != nullptr) {
      EXPECT_EQ(std::memcmp(c.data(), ref.data(), c.size() * sizeof(float)), 0)
          << threads << " threads";
    } else {
      for (size_t i = 0; i < c.size(); ++i) ASSERT_NEAR(c[i], ref[i], 1e-3f) << i;
    }
  }
}

}  // namespace
}  // namespace qat
