// Softmax and log-softmax lanes (exec/ops/softmax_lane.h) over the lane
// lengths real models use: 10 classes (MNIST), 1,000 (ImageNet), 6,625 (an
// OCR recognizer's character set), contiguous (inner = 1) and strided
// (inner = 8, the layout of Softmax over a middle axis).  One lane per
// iteration, on one thread; `items` counts elements.  The float lane
// (vectorized, kernels::ExpFloat) beside the plain template lane with
// std::exp and a double sum (the lane before issue 16, still the double
// one); and the array kernels of kernels/float_math.h beside std::exp /
// std::erf loops, over 4,096 values of N(0, 3) (the spread of attention
// logits and GELU inputs).
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "exec/ops/softmax_lane.h"
#include "kernels/float_math.h"

namespace qat {
namespace {

template <bool kReference>
void BM_Lane(benchmark::State& state, bool log) {
  const int64_t n = state.range(0);
  const int64_t inner = state.range(1);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> x(static_cast<size_t>(n * inner)), y(x.size());
  for (float& v : x) v = normal(rng);
  for (auto _ : state) {
    if (kReference) {
      exec::NormalizeLane<float>(x.data(), y.data(), n, inner, log);
    } else {
      exec::NormalizeLane(x.data(), y.data(), n, inner, log);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(state.iterations() * n * 8);
}

void BM_Softmax(benchmark::State& state) { BM_Lane<false>(state, false); }
void BM_LogSoftmax(benchmark::State& state) { BM_Lane<false>(state, true); }
void BM_SoftmaxReference(benchmark::State& state) { BM_Lane<true>(state, false); }
void BM_LogSoftmaxReference(benchmark::State& state) { BM_Lane<true>(state, true); }

std::vector<float> MathInputs() {
  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> x(4096);
  for (float& v : x) v = normal(rng);
  return x;
}

template <typename Fn>
void BM_Math(benchmark::State& state, Fn fn) {
  const std::vector<float> x = MathInputs();
  std::vector<float> y(x.size());
  for (auto _ : state) {
    fn(x.data(), y.data(), static_cast<int64_t>(x.size()));
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(x.size()));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(x.size()) * 8);
}

void BM_ExpFloats(benchmark::State& state) { BM_Math(state, kernels::ExpFloats); }
void BM_ErfFloats(benchmark::State& state) { BM_Math(state, kernels::ErfFloats); }
void BM_StdExp(benchmark::State& state) {
  BM_Math(state, [](const float* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
  });
}
void BM_StdErf(benchmark::State& state) {
  BM_Math(state, [](const float* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = std::erf(x[i]);
  });
}

void Sizes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {10, 1000, 6625}) {
    for (int64_t inner : {1, 8}) b->Args({n, inner});
  }
}

BENCHMARK(BM_Softmax)->Apply(Sizes);
BENCHMARK(BM_LogSoftmax)->Apply(Sizes);
BENCHMARK(BM_SoftmaxReference)->Apply(Sizes);
BENCHMARK(BM_LogSoftmaxReference)->Apply(Sizes);
BENCHMARK(BM_ExpFloats);
BENCHMARK(BM_StdExp);
BENCHMARK(BM_ErfFloats);
BENCHMARK(BM_StdErf);

}  // namespace
}  // namespace qat

BENCHMARK_MAIN();
