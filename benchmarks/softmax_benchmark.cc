// Softmax and log-softmax lanes (exec/ops/softmax_lane.h) over the lane
// lengths real models use: 10 classes (MNIST), 1,000 (ImageNet), 6,625 (an
// OCR recognizer's character set), contiguous (inner = 1) and strided
// (inner = 8, the layout of Softmax over a middle axis).  One lane per
// iteration, on one thread; `items` counts elements.
#include <cstdint>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "exec/ops/softmax_lane.h"

namespace qat {
namespace {

void BM_Lane(benchmark::State& state, bool log) {
  const int64_t n = state.range(0);
  const int64_t inner = state.range(1);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> x(static_cast<size_t>(n * inner)), y(x.size());
  for (float& v : x) v = normal(rng);
  for (auto _ : state) {
    exec::NormalizeLane(x.data(), y.data(), n, inner, log);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(state.iterations() * n * 8);
}

void BM_Softmax(benchmark::State& state) { BM_Lane(state, false); }
void BM_LogSoftmax(benchmark::State& state) { BM_Lane(state, true); }

void Sizes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {10, 1000, 6625}) {
    for (int64_t inner : {1, 8}) b->Args({n, inner});
  }
}

BENCHMARK(BM_Softmax)->Apply(Sizes);
BENCHMARK(BM_LogSoftmax)->Apply(Sizes);

}  // namespace
}  // namespace qat

BENCHMARK_MAIN();
