// Observers: how long calibration takes per method (issue target: the MLP on
// 1000 samples in under 2 s for every method), and how time grows with the
// number of samples and the histogram size.
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "qat/calibrate.h"
#include "qat/model_zoo.h"
#include "qat/observer.h"
#include "qat/quantize.h"

namespace qat {
namespace {

const CalibrationMethod kMethods[] = {
    CalibrationMethod::kMinMax, CalibrationMethod::kMovingAverage,
    CalibrationMethod::kPercentile, CalibrationMethod::kEntropy,
    CalibrationMethod::kMse};

std::vector<float> Normal(size_t n, float stddev, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// The activations of a 784-500-10 MLP (input, hidden, logits) for
// state.range(0) samples in batches of 100, then the ranges.
void MlpActivations(benchmark::State& state, CalibrationMethod method) {
  const int64_t samples = state.range(0);
  const int64_t bins = state.range(1);
  const int sizes[] = {784, 500, 10};
  std::vector<std::vector<float>> batches;
  for (int size : sizes) batches.push_back(Normal(100 * size, 1.0f, size));
  for (auto _ : state) {
    std::vector<std::unique_ptr<Observer>> observers;
    for (size_t t = 0; t < batches.size(); ++t) {
      ObserverOptions options;
      options.method = method;
      options.num_bins = bins;
      observers.push_back(*MakeObserver(options));
    }
    for (int64_t done = 0; done < samples; done += 100) {
      for (size_t t = 0; t < batches.size(); ++t) {
        if (!observers[t]->Observe(batches[t]).ok()) state.SkipWithError("observe");
      }
    }
    for (const auto& o : observers) {
      auto r = o->Ranges();
      if (!r.ok()) state.SkipWithError("ranges");
      benchmark::DoNotOptimize(r);
    }
  }
  state.counters["samples"] = static_cast<double>(samples);
}

// A [500, 784] weight per output channel.
void PerChannelWeight(benchmark::State& state, CalibrationMethod method) {
  const std::vector<float> weight = Normal(500 * 784, 0.05f, 2);
  const std::vector<int64_t> shape = {500, 784};
  for (auto _ : state) {
    ObserverOptions options;
    options.method = method;
    options.axis = 0;
    options.symmetric = true;
    auto o = *MakeObserver(options);
    if (!o->Observe(shape, weight).ok()) state.SkipWithError("observe");
    auto r = o->Ranges();
    benchmark::DoNotOptimize(r);
  }
}

// Quantizing a 100-layer model (issue target: under 1 s): an MLP with 99
// hidden layers of 64, calibrated once outside the timing.
void Quantize100Layers(benchmark::State& state) {
  MlpSpec spec;
  spec.inputs = 64;
  spec.hidden.assign(99, 64);
  spec.outputs = 10;
  auto model = MakeMlp(spec);
  const std::vector<float> x = Normal(32 * 64, 1.0f, 3);
  auto data = Dataset::Create(Tensor::FromValues<float>({32, 64}, absl::MakeConstSpan(x)),
                              Tensor(DataType::kInt64, {32}));
  auto table = Calibrate(*model, *data, {});
  if (!table.ok()) state.SkipWithError(table.status().ToString().c_str());
  QuantizeOptions options;
  options.per_channel = true;
  for (auto _ : state) {
    auto q = QuantizeModel(*model, *table, options);
    if (!q.ok()) state.SkipWithError(q.status().ToString().c_str());
    benchmark::DoNotOptimize(q);
  }
}

void RegisterAll() {
  for (CalibrationMethod m : kMethods) {
    const std::string name = CalibrationMethodName(m);
    benchmark::RegisterBenchmark(("mlp_activations/" + name).c_str(),
                                 MlpActivations, m)
        ->ArgsProduct({{100, 1000, 10000}, {2048}})
        ->ArgsProduct({{1000}, {512, 8192}})
        ->ArgNames({"samples", "bins"})
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("per_channel_500x784/" + name).c_str(),
                                 PerChannelWeight, m)
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RegisterBenchmark("quantize_100_layers", Quantize100Layers)
      ->Unit(benchmark::kMillisecond);
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
