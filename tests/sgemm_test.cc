// Every GEMM variant of the manifest (the SIMD ones this CPU runs and the
// scalar fallback) against SgemmReference: bit for bit, with the same case
// list for each, for every transpose, for sizes around the micro-tile, tile
// and depth-block edges, and through Gemm() with every thread count; and
// every variant's direct convolution against DirectConvReference.  ctest
// runs the binary a second time with QAT_KERNEL_VARIANT=scalar, so that
// Gemm() itself runs on the fallback.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/sgemm_variants.h"
#include "exec/ops/gemm.h"

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
  ASSERT_FALSE(variants.empty());
  EXPECT_STREQ(variants.front()->name, "scalar");
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

// Many tiles in both directions, and the same bits for 1, 2 and 3 threads,
// for every transpose (Gemm() transposes a stored A^T and packs a stored
// B^T once ahead when several tiles would each pack them).
TEST(SgemmTest, GemmIsTheSameForEveryThreadCount) {
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const exec::GemmShape s{130, 300, 700, ta, tb};
      const std::vector<float> a = Random(s.m * s.k, 3), b = Random(s.k * s.n, 4);
      const std::vector<float> ref = Reference(s, a.data(), b.data());
      for (int threads : {1, 2, 3}) {
        ThreadPool pool(threads);
        std::vector<float> c(s.m * s.n);
        exec::PackedGemmB cache;
        exec::Gemm(&pool, s, a.data(), b.data(), c.data(), threads == 3 ? &cache : nullptr);
        EXPECT_EQ(std::memcmp(c.data(), ref.data(), c.size() * sizeof(float)), 0)
            << threads << " threads, ta=" << ta << " tb=" << tb << ", "
            << kernels::SelectedSgemmKernels().name;
      }
    }
  }
}

// The default is the fastest variant this CPU runs (AVX-512 on this
// project's machines); QAT_KERNEL_VARIANT=scalar puts GEMM on the fallback.
TEST(SgemmTest, SelectedVariantFollowsTheEnvironment) {
  const auto variants = kernels::SupportedSgemmVariants();
  const char* gemm = std::getenv("QAT_GEMM_VARIANT");
  const char* any = std::getenv("QAT_KERNEL_VARIANT");
  const std::string selected = kernels::SelectedSgemmKernels().name;
  if (gemm == nullptr && any != nullptr && std::string(any) == "scalar") {
    EXPECT_EQ(selected, "scalar");
  } else if (gemm == nullptr && any == nullptr) {
    EXPECT_EQ(selected, variants.back()->name);
#if defined(QAT_HAVE_AVX2_KERNELS)
    if (kernels::CpuSupports(kernels::Isa::kAvx512)) {
      EXPECT_EQ(selected, "avx512");
    }
#endif
  }
#if !defined(QAT_HAVE_AVX2_KERNELS)
  EXPECT_EQ(variants.size(), 1u) << "a build without the SIMD variants has only the fallback";
  EXPECT_EQ(selected, "scalar");
#endif
}

}  // namespace
}  // namespace qat

namespace qat {
namespace {

// Every variant's direct convolution against DirectConvReference, bit for
// bit: padding on each side, vertical strides, rows of one and two
// vectors, and output-channel counts around the register blocks.
TEST(DirectConvTest, EveryVariantMatchesTheReferenceBitForBit) {
  const auto variants = kernels::SupportedSgemmVariants();
  struct Case {
    int64_t channels, in_h, in_w, out_channels, kh, kw, stride_h, pad_top, pad_left;
  };
  const Case cases[] = {
      {1, 28, 28, 6, 5, 5, 1, 2, 2},   // LeNet-5's first layer
      {6, 14, 14, 16, 5, 5, 1, 0, 0},  // and its second
      {3, 9, 7, 17, 3, 3, 2, 1, 1},    {2, 5, 33, 1, 1, 3, 1, 0, 1},
      {4, 6, 5, 9, 3, 1, 1, 2, 0},     {2, 8, 16, 8, 3, 4, 3, 1, 3},
  };
  std::map<std::string, int> checked;  // cases each variant took
  for (const Case& c : cases) {
    kernels::DirectConv d{};
    d.channels = c.channels;
    d.in_h = c.in_h;
    d.in_w = c.in_w;
    d.out_channels = c.out_channels;
    d.kernel_h = c.kh;
    d.kernel_w = c.kw;
    d.stride_h = c.stride_h;
    d.pad_top = c.pad_top;
    d.pad_left = c.pad_left;
    // Symmetric padding: out = (in + 2 pad - kernel) / stride + 1.
    d.out_h = (c.in_h + 2 * c.pad_top - c.kh) / c.stride_h + 1;
    d.out_w = c.in_w + 2 * c.pad_left - c.kw + 1;
    const std::vector<float> x = Random(c.channels * c.in_h * c.in_w, 11);
    const int64_t depth = c.channels * c.kh * c.kw;
    const std::vector<float> w = Random(c.out_channels * depth, 12);
    std::vector<float> transposed(w.size());
    for (int64_t o = 0; o < c.out_channels; ++o) {
      for (int64_t k = 0; k < depth; ++k) transposed[k * c.out_channels + o] = w[o * depth + k];
    }
    d.x = x.data();
    d.w = w.data();
    d.w_transposed = transposed.data();
    std::vector<float> ref(c.out_channels * d.out_h * d.out_w);
    d.y = ref.data();
    kernels::DirectConvReference(d);
    for (const kernels::SgemmKernels* kernel : variants) {
      if (!kernel->direct_conv_fits(d)) continue;
      ++checked[kernel->name];
      std::vector<float> y(ref.size(), -7.0f);
      d.y = y.data();
      kernel->direct_conv(d);
      ASSERT_EQ(std::memcmp(y.data(), ref.data(), y.size() * sizeof(float)), 0)
          << kernel->name << " channels=" << c.channels << " out_w=" << d.out_w
          << " out_channels=" << c.out_channels;
    }
  }
  for (const kernels::SgemmKernels* kernel : variants) {
    if (kernel->isa == kernels::Isa::kScalar) {
      // The fallback leaves convolution to im2col and its GEMM.
      EXPECT_EQ(checked[kernel->name], 0);
    } else {
      EXPECT_GE(checked[kernel->name], 3) << kernel->name;
    }
  }
}

}  // namespace
}  // namespace qat
