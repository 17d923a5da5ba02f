// kernels/float_math.h: ExpFloat and ErfFloat against double-precision
// std::exp / std::erf rounded to float, over every 256th float (2^24
// points) and dense sweeps of the edges (subnormal results, the overflow
// boundary, tiny arguments, where erf reaches 1), within the bounds the
// header states; and the array loops, which run the clone for this CPU,
// against the scalar code called one element at a time, bit for bit; and
// the executor's Exp and Erf on float tensors, which give those bits.
#include "kernels/float_math.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "graph_builder.h"
#include "gtest/gtest.h"
#include "qat/executor.h"

namespace qat {
namespace kernels {
namespace {

// The bounds in kernels/float_math.h and docs/kernels.md.
constexpr int64_t kExpMaxUlp = 1;
constexpr int64_t kErfMaxUlp = 1;

using float_math_internal::Bits;
using float_math_internal::FromBits;

// Floats in order as integers, so that the difference counts ULPs (and
// +0 and -0 are the same point).
int64_t Ordinal(float f) {
  const uint32_t b = Bits(f);
  const int64_t magnitude = b & 0x7fffffffu;
  return (b >> 31) != 0 ? -magnitude : magnitude;
}

// The single-value functions, one call per element and not vectorized: the
// scalar evaluation the clones must reproduce.
__attribute__((noinline, optimize("no-tree-vectorize"))) float ScalarExp(float x) {
  return ExpFloat(x);
}
__attribute__((noinline, optimize("no-tree-vectorize"))) float ScalarErf(float x) {
  return ErfFloat(x);
}

struct Sweep {
  std::vector<float> x;
  void Range(uint32_t first_bits, uint32_t last_bits, uint32_t stride) {
    for (uint64_t b = first_bits; b <= last_bits; b += stride) x.push_back(FromBits(uint32_t(b)));
  }
  // [lo, hi] for lo <= hi, either sign, every float.
  void Dense(float lo, float hi) {
    for (float v = lo; v <= hi; v = std::nextafter(v, INFINITY)) x.push_back(v);
  }
};

Sweep CommonSweep() {
  Sweep s;
  s.Range(0, 0xffffffffu, 256);  // every 256th float, both signs, NaNs included
  for (float v : {0.0f, -0.0f, INFINITY, -INFINITY, std::numeric_limits<float>::quiet_NaN(),
                  -std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::min(),
                  std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::denorm_min(),
                  std::numeric_limits<float>::max(), -std::numeric_limits<float>::max()}) {
    s.x.push_back(v);
  }
  return s;
}

// Checks f (the array kernel) against ref over s; NaN must give NaN.
template <typename Kernel, typename Ref>
void ExpectWithin(const Sweep& s, Kernel kernel, Ref ref, int64_t max_ulp, const char* name) {
  std::vector<float> y(s.x.size());
  kernel(s.x.data(), y.data(), static_cast<int64_t>(s.x.size()));
  int64_t worst = 0;
  float worst_x = 0;
  for (size_t i = 0; i < s.x.size(); ++i) {
    const float want = static_cast<float>(ref(static_cast<double>(s.x[i])));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(y[i])) << name << "(" << s.x[i] << ") = " << y[i];
      continue;
    }
    ASSERT_FALSE(std::isnan(y[i])) << name << "(" << s.x[i] << ")";
    const int64_t d = std::llabs(Ordinal(y[i]) - Ordinal(want));
    if (d > worst) {
      worst = d;
      worst_x = s.x[i];
    }
  }
  EXPECT_LE(worst, max_ulp) << name << " worst at " << std::hexfloat << worst_x << " (bits 0x"
                            << std::hex << Bits(worst_x) << ")";
}

TEST(FloatMathTest, ExpWithinBoundOfDouble) {
  Sweep s = CommonSweep();
  s.Dense(-104.5f, -87.0f);                       // subnormal results and the underflow to 0
  s.Dense(88.0f, 89.5f);                          // the overflow boundary
  s.Range(0, Bits(1e-3f), 512);                   // around 0 (result near 1)
  s.Range(0x80000000u, Bits(-1e-3f), 512);
  ExpectWithin(s, ExpFloats, [](double v) { return std::exp(v); }, kExpMaxUlp, "exp");
}

TEST(FloatMathTest, ExpSpecialValues) {
  EXPECT_EQ(ExpFloat(0.0f), 1.0f);
  EXPECT_EQ(ExpFloat(-0.0f), 1.0f);
  EXPECT_EQ(ExpFloat(INFINITY), INFINITY);
  EXPECT_EQ(Bits(ExpFloat(-INFINITY)), 0u);
  EXPECT_TRUE(std::isnan(ExpFloat(NAN)));
  // The last float with a finite exp, and the next one.
  EXPECT_TRUE(std::isfinite(ExpFloat(FromBits(0x42b17217u))));
  EXPECT_EQ(ExpFloat(FromBits(0x42b17218u)), INFINITY);
  EXPECT_EQ(ExpFloat(-1000.0f), 0.0f);
  EXPECT_GT(ExpFloat(-103.0f), 0.0f);  // subnormal, not flushed
}

TEST(FloatMathTest, ErfWithinBoundOfDouble) {
  Sweep s = CommonSweep();
  s.Range(0, Bits(1e-30f), 64);  // tiny and subnormal arguments: erf ~ 2/sqrt(pi) x
  s.Range(0x80000000u, Bits(-1e-30f), 64);
  s.Dense(0.99f, 1.01f);      // the switch between the two regions
  s.Dense(-1.01f, -0.99f);
  s.Dense(3.85f, 4.05f);      // where erf rounds to 1, and the clamp
  ExpectWithin(s, ErfFloats, [](double v) { return std::erf(v); }, kErfMaxUlp, "erf");
}

TEST(FloatMathTest, ErfSpecialValues) {
  EXPECT_EQ(Bits(ErfFloat(0.0f)), Bits(0.0f));
  EXPECT_EQ(Bits(ErfFloat(-0.0f)), Bits(-0.0f));
  EXPECT_EQ(ErfFloat(INFINITY), 1.0f);
  EXPECT_EQ(ErfFloat(-INFINITY), -1.0f);
  EXPECT_EQ(ErfFloat(3.92f), 1.0f);
  EXPECT_LT(ErfFloat(3.9f), 1.0f);
  EXPECT_TRUE(std::isnan(ErfFloat(NAN)));
  const float tiny = std::numeric_limits<float>::denorm_min() * 1000;
  EXPECT_EQ(ErfFloat(tiny), static_cast<float>(std::erf(double{tiny})));
  for (float v : {0.1f, 0.7f, 1.3f, 2.2f, 3.5f}) EXPECT_EQ(Bits(ErfFloat(-v)), Bits(-ErfFloat(v)));
}

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__clang__)
// The loop compiled here for each instruction set the library clones for,
// so that every variant is checked on a CPU that has it (the library's
// own ExpFloats runs only the clone for this CPU).
#define QAT_TEST_ISA_LOOPS(isa, suffix)                                                   \
  __attribute__((target(isa))) void ExpLoop##suffix(const float* x, float* y, int64_t n) { \
    for (int64_t i = 0; i < n; ++i) y[i] = ExpFloat(x[i]);                                 \
  }                                                                                        \
  __attribute__((target(isa))) void ErfLoop##suffix(const float* x, float* y, int64_t n) { \
    for (int64_t i = 0; i < n; ++i) y[i] = ErfFloat(x[i]);                                 \
  }
QAT_TEST_ISA_LOOPS("sse2", Sse2)  // the baseline clone's instruction set
QAT_TEST_ISA_LOOPS("avx2", Avx2)
QAT_TEST_ISA_LOOPS("avx512f", Avx512)
#undef QAT_TEST_ISA_LOOPS

TEST(FloatMathTest, EveryIsaLoopMatchesScalarBitForBit) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<uint32_t> any_bits;
  std::normal_distribution<float> normal(0.0f, 4.0f);
  std::vector<float> x(1 << 16);
  for (size_t i = 0; i < x.size(); ++i) x[i] = i % 2 == 0 ? FromBits(any_bits(rng)) : normal(rng);
  struct Loop {
    const char* isa;
    bool supported;
    void (*exp)(const float*, float*, int64_t);
    void (*erf)(const float*, float*, int64_t);
  };
  const Loop loops[] = {{"sse2", __builtin_cpu_supports("sse2") != 0, ExpLoopSse2, ErfLoopSse2},
                        {"avx2", __builtin_cpu_supports("avx2") != 0, ExpLoopAvx2, ErfLoopAvx2},
                        {"avx512f", __builtin_cpu_supports("avx512f") != 0, ExpLoopAvx512,
                         ErfLoopAvx512}};
  int ran = 0;
  for (const Loop& loop : loops) {
    if (!loop.supported) continue;
    ++ran;
    std::vector<float> e(x.size()), f(x.size());
    loop.exp(x.data(), e.data(), static_cast<int64_t>(x.size()) - 3);
    loop.erf(x.data(), f.data(), static_cast<int64_t>(x.size()) - 3);
    for (size_t i = 0; i + 3 < x.size(); ++i) {
      ASSERT_EQ(Bits(e[i]), Bits(ScalarExp(x[i]))) << loop.isa << " exp, x bits 0x" << std::hex << Bits(x[i]);
      ASSERT_EQ(Bits(f[i]), Bits(ScalarErf(x[i]))) << loop.isa << " erf, x bits 0x" << std::hex << Bits(x[i]);
    }
  }
  if (ran < 3) GTEST_SKIP() << "this CPU runs only " << ran << " of the 3 vector variants";
}
#endif

// The array loops (the AVX-512 or AVX2 clone on such a CPU) against the
// scalar code, over lengths below, at and above the vector widths (odd
// tails), at unaligned starts, and in place.
TEST(FloatMathTest, ClonesMatchScalarBitForBit) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  std::uniform_int_distribution<uint32_t> any_bits;
  std::vector<float> x(5000);
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = i % 3 == 0 ? FromBits(any_bits(rng)) : normal(rng) * (i % 5 == 0 ? 30.0f : 1.0f);
  }
  x[11] = NAN;
  x[12] = INFINITY;
  x[13] = -INFINITY;
  x[14] = -0.0f;
  x[15] = -103.5f;
  x[16] = 88.72f;
  struct Fn {
    const char* name;
    void (*array)(const float*, float*, int64_t);
    float (*scalar)(float);
  };
  for (const Fn& fn : {Fn{"exp", ExpFloats, ScalarExp}, Fn{"erf", ErfFloats, ScalarErf}}) {
    for (int64_t offset : {0, 1, 3}) {
      for (int64_t n = 0; n <= 67; ++n) {
        std::vector<float> y(static_cast<size_t>(n) + 2, 12345.0f);  // a sentinel past the end
        fn.array(x.data() + offset, y.data(), n);
        for (int64_t i = 0; i < n; ++i) {
          const float v = x[static_cast<size_t>(offset + i)];
          ASSERT_EQ(Bits(y[static_cast<size_t>(i)]), Bits(fn.scalar(v)))
              << fn.name << " n " << n << " i " << i << " x bits 0x" << std::hex << Bits(v);
        }
        EXPECT_EQ(y[static_cast<size_t>(n)], 12345.0f) << fn.name << " wrote past n " << n;
      }
    }
    std::vector<float> in_place(x.begin(), x.end());
    fn.array(in_place.data(), in_place.data(), static_cast<int64_t>(in_place.size()));
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_EQ(Bits(in_place[i]), Bits(fn.scalar(x[i])))
          << fn.name << " in place, i " << i << " x bits 0x" << std::hex << Bits(x[i]);
    }
  }
}

// The executor's Exp and Erf on float tensors give the kernels' bits, for
// sizes below and above a pool task, on 1 and 2 threads.
TEST(FloatMathTest, ExpAndErfOpsGiveTheKernelBits) {
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (const char* op : {"Exp", "Erf"}) {
    for (int64_t rows : {1, 32, 64, 5000}) {
      for (int threads : {1, 2}) {
        GraphBuilder b;
        b.Input("x", kFloat, {-1, 10});
        b.Node(op, {"x"}, {"y"});
        b.Output("y", kFloat, {-1, 10});
        auto model = b.Build();
        ASSERT_TRUE(model.ok()) << model.status();
        ExecutorOptions options;
        options.num_threads = threads;
        auto exec = Executor::Create(*model, options);
        ASSERT_TRUE(exec.ok()) << exec.status();
        std::vector<float> x(static_cast<size_t>(rows * 10));
        for (float& v : x) v = normal(rng);
        auto out = (*exec)->Run({{"x", Tensor::FromValues<float>({rows, 10}, x)}});
        ASSERT_TRUE(out.ok()) << out.status();
        const auto y = out->at("y").values<float>();
        ASSERT_EQ(y.size(), x.size());
        for (size_t i = 0; i < x.size(); ++i) {
          const float want = std::string(op) == "Exp" ? ScalarExp(x[i]) : ScalarErf(x[i]);
          ASSERT_EQ(Bits(y[i]), Bits(want)) << op << " rows " << rows << " threads " << threads
                                            << " i " << i << " x " << x[i];
        }
      }
    }
  }
}

}  // namespace
}  // namespace kernels
}  // namespace qat
