// FakeQuant kernels against a memcpy baseline, in one binary so that the
// ratios compare like with like.  One registration per variant in the
// manifest; all run on one thread unless the name says /threads:N.
//
// Bytes counted per element:
//   memcpy                    4 read + 4 written
//   forward (Y and mask)      4 read + 5 written
//   forward + STE backward    forward, then 5 read (dy, mask) + 4 written
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "kernels/fake_quant_internal.h"
#include "kernels/fake_quant_variants.h"

namespace qat {
namespace {

using kernels::FakeQuantKernels;

std::vector<float> RandomInputs(size_t n) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = normal(rng);
  return x;
}

const FakeQuantParams kParams{0.02f, 3.0f, QuantRange::Int8()};

void BM_Memcpy(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::vector<float> src = RandomInputs(n), dst(n);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), n * sizeof(float));
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(state.iterations() * n * 8);
}

// Buffers for the per-tensor benchmarks, and a pool when threads > 1.
struct PerTensorBuffers {
  PerTensorBuffers(size_t n, int threads)
      : x(RandomInputs(n)), y(n), dy(RandomInputs(n)), dx(n),
        mask(new bool[n]), size(n) {
    if (threads > 1) pool = std::make_unique<ThreadPool>(threads);
  }
  absl::Span<bool> mask_span() { return {mask.get(), size}; }

  std::vector<float> x, y, dy, dx;
  std::unique_ptr<bool[]> mask;
  size_t size;
  std::unique_ptr<ThreadPool> pool;
};

void Forward(benchmark::State& state, const FakeQuantKernels* k,
             int threads) {
  PerTensorBuffers b(static_cast<size_t>(state.range(0)), threads);
  for (auto _ : state) {
    auto st = internal::FakeQuantPerTensor(*k, b.x, absl::MakeSpan(b.y),
                                           b.mask_span(), kParams,
                                           b.pool.get());
    if (!st.ok()) state.SkipWithError(st.ToString().c_str());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * b.size);
  state.SetBytesProcessed(state.iterations() * b.size * 9);
}

void ForwardBackward(benchmark::State& state, const FakeQuantKernels* k,
                     int threads) {
  PerTensorBuffers b(static_cast<size_t>(state.range(0)), threads);
  for (auto _ : state) {
    auto st = internal::FakeQuantPerTensor(*k, b.x, absl::MakeSpan(b.y),
                                           b.mask_span(), kParams,
                                           b.pool.get());
    if (st.ok()) {
      st = internal::FakeQuantGrad(*k, b.dy, b.mask_span(),
                                   absl::MakeSpan(b.dx), b.pool.get());
    }
    if (!st.ok()) state.SkipWithError(st.ToString().c_str());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * b.size);
  state.SetBytesProcessed(state.iterations() * b.size * 18);
}

void PerChannel(benchmark::State& state, const FakeQuantKernels* k) {
  const std::vector<int64_t> shape = {state.range(0), state.range(1)};
  const size_t n = static_cast<size_t>(shape[0] * shape[1]);
  std::vector<float> x = RandomInputs(n), y(n);
  std::unique_ptr<bool[]> mask(new bool[n]);
  std::vector<float> scales(shape[0], 0.01f), zps(shape[0], 0.0f);
  const PerChannelFakeQuantParams params{scales, zps, 0,
                                         QuantRange::Int8Narrow()};
  for (auto _ : state) {
    auto st = internal::FakeQuantPerChannel(*k, shape, x, absl::MakeSpan(y),
                                            absl::Span<bool>(mask.get(), n),
                                            params, nullptr);
    if (!st.ok()) state.SkipWithError(st.ToString().c_str());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(state.iterations() * n * 9);
}

void LsqBackward(benchmark::State& state, const FakeQuantKernels* k) {
  PerTensorBuffers b(static_cast<size_t>(state.range(0)), 1);
  for (auto _ : state) {
    auto g = internal::FakeQuantLsqGradPerTensor(
        *k, b.x, b.dy, absl::MakeSpan(b.dx), kParams, 1.0f, nullptr);
    if (!g.ok()) state.SkipWithError(g.status().ToString().c_str());
    benchmark::DoNotOptimize(g);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * b.size);
  state.SetBytesProcessed(state.iterations() * b.size * 12);
}

// LSQ per channel of a [rows, cols] weight along `axis` (1: channels last,
// a MatMul weight [K, N]; 0: a Gemm transB weight [N, K]).
void LsqPerChannel(benchmark::State& state, const FakeQuantKernels* k) {
  const std::vector<int64_t> shape = {state.range(0), state.range(1)};
  const int64_t axis = state.range(2);
  const size_t n = static_cast<size_t>(shape[0] * shape[1]);
  std::vector<float> x = RandomInputs(n), dy = RandomInputs(n), dx(n);
  const size_t channels = static_cast<size_t>(shape[axis]);
  std::vector<float> scales(channels, 0.01f), zps(channels, 0.0f);
  std::vector<float> sg(channels), zg(channels);
  const PerChannelFakeQuantParams params{scales, zps, axis, QuantRange::Int8Narrow()};
  for (auto _ : state) {
    auto st = internal::FakeQuantLsqGradPerChannel(*k, shape, x, dy, absl::MakeSpan(dx),
                                                   absl::MakeSpan(sg), absl::MakeSpan(zg),
                                                   params, 1.0f, nullptr);
    if (!st.ok()) state.SkipWithError(st.ToString().c_str());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(state.iterations() * n * 12);
}

void RegisterAll() {
  const int64_t kSmall = int64_t{1} << 20, kLarge = int64_t{1} << 24;
  benchmark::RegisterBenchmark("memcpy", BM_Memcpy)
      ->Arg(kSmall)->Arg(kLarge)->UseRealTime();
  for (const FakeQuantKernels* k : kernels::SupportedFakeQuantVariants()) {
    const std::string v = k->name;
    benchmark::RegisterBenchmark(("forward/" + v).c_str(), Forward, k, 1)
        ->Arg(kSmall)->Arg(kLarge)->UseRealTime();
    benchmark::RegisterBenchmark(("forward_backward/" + v).c_str(),
                                 ForwardBackward, k, 1)
        ->Arg(kSmall)->Arg(kLarge)->UseRealTime();
    benchmark::RegisterBenchmark(("per_channel_axis0/" + v).c_str(),
                                 PerChannel, k)
        ->Args({500, 784})->Args({4096, 4096})->UseRealTime();
    // 64 x 784: the MLP's input batch (in cache); 2^24: streaming.
    benchmark::RegisterBenchmark(("lsq_backward/" + v).c_str(), LsqBackward,
                                 k)
        ->Arg(64 * 784)->Arg(kLarge)->UseRealTime();
    benchmark::RegisterBenchmark(("lsq_per_channel/" + v).c_str(), LsqPerChannel, k)
        ->Args({784, 500, 1})->Args({500, 784, 0})->UseRealTime();
    benchmark::RegisterBenchmark(("forward/" + v + "/threads:2").c_str(),
                                 Forward, k, 2)
        ->Arg(kLarge)->UseRealTime();
  }
}

}  // namespace
}  // namespace qat

int main(int argc, char** argv) {
  qat::RegisterAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
