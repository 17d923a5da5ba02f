// One training step (forward, backward, AdamW update) of the 784-500-10 MLP
// at batch 64, in fp32 and with quantization (QatTrainStep: FakeQuant on
// every weight, per channel, and on every activation a layer reads), and
// forward passes, on a chosen thread count (the benchmark argument).
// benchmarks/training_vs_pytorch.py compares them with PyTorch in the same
// run; benchmarks/executor_vs_ort.py compares the forward passes with ONNX
// Runtime.
#include <map>
#include <memory>
#include <random>
#include <string>

#include "benchmark/benchmark.h"
#include "qat_training_models.h"
#include "qat/executor.h"
#include "qat/model_zoo.h"
#include "qat/trainer.h"

namespace qat {
namespace {

std::map<std::string, Tensor> Batch(int64_t n) {
  Tensor x(DataType::kFloat32, {n, 784});
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (float& v : x.values<float>()) v = u(rng);
  Tensor y(DataType::kInt64, {n});
  for (int64_t i = 0; i < n; ++i) y.data<int64_t>()[i] = i % 10;
  return {{"input", x}, {"labels", y}};
}

void TrainStep(benchmark::State& state) {
  auto models = BuildTrainingModels(*MakeMlp(), {});
  TrainerOptions options;
  options.num_threads = static_cast<int>(state.range(0));
  auto trainer = Trainer::Create(*models, options);
  const auto batch = Batch(64);
  for (auto _ : state) {
    auto loss = (*trainer)->TrainStep(batch);
    if (!loss.ok()) state.SkipWithError(loss.status().ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations() * 64);
}

// The MLP calibrated on `batch` and turned into QAT training graphs.
absl::StatusOr<TrainingModels> QatMlp(const std::map<std::string, Tensor>& batch,
                                      QuantParamMode mode) {
  auto mlp = MakeMlp();
  if (!mlp.ok()) return mlp.status();
  return QatTrainingModels(*mlp, batch.at("input"), batch.at("labels"), mode);
}

void QatTrainStep(benchmark::State& state) {
  const auto batch = Batch(64);
  auto models = QatMlp(batch, static_cast<QuantParamMode>(state.range(0)));
  if (!models.ok()) {
    state.SkipWithError(models.status().ToString().c_str());
    return;
  }
  TrainerOptions options;
  options.num_threads = static_cast<int>(state.range(1));
  auto trainer = Trainer::Create(*models, options);
  if (!trainer.ok()) {
    state.SkipWithError(trainer.status().ToString().c_str());
    return;
  }
  for (auto _ : state) {
    auto loss = (*trainer)->TrainStep(batch);
    if (!loss.ok()) state.SkipWithError(loss.status().ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations() * 64);
}

void Forward(benchmark::State& state) {
  auto mlp = MakeMlp();
  ExecutorOptions options;
  options.num_threads = static_cast<int>(state.range(0));
  auto exec = Executor::Create(*mlp, options);
  const auto batch = Batch(64);
  const std::map<std::string, Tensor> in = {{"input", batch.at("input")}};
  for (auto _ : state) {
    auto out = (*exec)->Run(in);
    if (!out.ok()) state.SkipWithError(out.status().ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations() * 64);
}

// LeNet-5's forward pass at batch 64, for the comparison with ONNX Runtime.
void ForwardLeNet(benchmark::State& state) {
  auto lenet = MakeLeNet5();
  ExecutorOptions options;
  options.num_threads = static_cast<int>(state.range(0));
  auto exec = Executor::Create(*lenet, options);
  Tensor x(DataType::kFloat32, {64, 1, 28, 28});
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (float& v : x.values<float>()) v = u(rng);
  const std::map<std::string, Tensor> in = {{"input", x}};
  for (auto _ : state) {
    auto out = (*exec)->Run(in);
    if (!out.ok()) state.SkipWithError(out.status().ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations() * 64);
}

BENCHMARK(TrainStep)->Arg(1)->Arg(2)->ArgName("threads")->Unit(benchmark::kMillisecond);
BENCHMARK(QatTrainStep)
    ->ArgsProduct({{kFixed, kObserve, kLearn}, {1, 2}})
    ->ArgNames({"mode", "threads"})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(Forward)->Arg(1)->Arg(2)->ArgName("threads")->Unit(benchmark::kMillisecond);
BENCHMARK(ForwardLeNet)->Arg(1)->Arg(2)->ArgName("threads")->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace qat

BENCHMARK_MAIN();
