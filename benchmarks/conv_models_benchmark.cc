// The forward pass (Executor::Run), the fp32 training step
// (Trainer::TrainStep: forward, backward, AdamW, cross-entropy loss) and the
// QAT training step (qat_training_models.h, scales fixed, observed or
// learned) of an ONNX model from a file, at 1 and 2 threads: the models of
// issue 16 (torchvision resnet18, mobilenet_v2, a transformer encoder, a
// ViT) for benchmarks/models_vs_peers.py, which compares them with ONNX
// Runtime and PyTorch in the same run.
//
//   QAT_BENCH_MODEL=model.onnx QAT_BENCH_SHAPE=32x3x32x32 QAT_BENCH_CLASSES=10
//     [QAT_BENCH_IDS=1000] conv_models_benchmark
//
// The input is uniform in [0, 1) from a fixed seed, or with QAT_BENCH_IDS=V
// int64 token ids uniform in [0, V); labels are i % classes.
// Without QAT_BENCH_MODEL every benchmark says so and skips.
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "qat_training_models.h"
#include "qat/executor.h"
#include "qat/model.h"
#include "qat/trainer.h"
#include "qat/training_graph.h"

namespace qat {
namespace {

struct Setup {
  std::string error;  // non-empty: why the benchmarks skip
  std::unique_ptr<Model> model;
  std::map<std::string, Tensor> batch;  // the input and `labels`
  std::string input;
};

const Setup& GetSetup() {
  static const Setup* setup = [] {
    auto* s = new Setup;
    const char* path = std::getenv("QAT_BENCH_MODEL");
    const char* shape_text = std::getenv("QAT_BENCH_SHAPE");
    const char* classes_text = std::getenv("QAT_BENCH_CLASSES");
    if (path == nullptr || shape_text == nullptr) {
      s->error = "set QAT_BENCH_MODEL and QAT_BENCH_SHAPE (e.g. 32x3x32x32)";
      return s;
    }
    auto model = Model::Load(path);
    if (!model.ok()) {
      s->error = model.status().ToString();
      return s;
    }
    s->model = std::make_unique<Model>(*std::move(model));
    std::vector<int64_t> shape;
    std::stringstream in(shape_text);
    for (std::string part; std::getline(in, part, 'x');) shape.push_back(std::stoll(part));
    s->input = s->model->inputs().at(0).name;
    std::mt19937 rng(1);
    Tensor x;
    if (const char* ids = std::getenv("QAT_BENCH_IDS"); ids != nullptr) {
      x = Tensor(DataType::kInt64, shape);
      std::uniform_int_distribution<int64_t> u(0, std::stoll(ids) - 1);
      for (int64_t& v : x.values<int64_t>()) v = u(rng);
    } else {
      x = Tensor(DataType::kFloat32, shape);
      std::uniform_real_distribution<float> u(0.0f, 1.0f);
      for (float& v : x.values<float>()) v = u(rng);
    }
    const int64_t classes = classes_text != nullptr ? std::stoll(classes_text) : 10;
    Tensor labels(DataType::kInt64, {shape.at(0)});
    for (int64_t i = 0; i < shape.at(0); ++i) labels.data<int64_t>()[i] = i % classes;
    s->batch = {{s->input, x}, {"labels", labels}};
    return s;
  }();
  return *setup;
}

// The setup, or nullptr after skipping the benchmark with its error.
const Setup* SetupOrSkip(benchmark::State& state) {
  const Setup& s = GetSetup();
  if (s.error.empty()) return &s;
  state.SkipWithError(s.error.c_str());
  return nullptr;
}

void ModelForward(benchmark::State& state) {
  const Setup* setup = SetupOrSkip(state);
  if (setup == nullptr) return;
  const Setup& s = *setup;
  ExecutorOptions options;
  options.num_threads = static_cast<int>(state.range(0));
  options.fuse_conv_activations = state.range(1) != 0;  // fuse:0 measures what fusion saves
  auto exec = Executor::Create(*s.model, options);
  if (!exec.ok()) {
    state.SkipWithError(exec.status().ToString().c_str());
    return;
  }
  const std::map<std::string, Tensor> in = {{s.input, s.batch.at(s.input)}};
  for (auto _ : state) {
    auto out = (*exec)->Run(in);
    if (!out.ok()) state.SkipWithError(out.status().ToString().c_str());
  }
}

// Times Trainer::TrainStep on `models`, at `threads`.
void TimeTrainStep(benchmark::State& state, const absl::StatusOr<TrainingModels>& models,
                   int threads) {
  const Setup& s = GetSetup();
  if (!models.ok()) {
    state.SkipWithError(models.status().ToString().c_str());
    return;
  }
  TrainerOptions options;
  options.num_threads = threads;
  auto trainer = Trainer::Create(*models, options);
  if (!trainer.ok()) {
    state.SkipWithError(trainer.status().ToString().c_str());
    return;
  }
  for (auto _ : state) {
    auto loss = (*trainer)->TrainStep(s.batch);
    if (!loss.ok()) state.SkipWithError(loss.status().ToString().c_str());
  }
}

void ModelTrainStep(benchmark::State& state) {
  const Setup* setup = SetupOrSkip(state);
  if (setup == nullptr) return;
  const Setup& s = *setup;
  TrainingGraphOptions graph;
  graph.loss.kind = LossKind::kCrossEntropy;
  TimeTrainStep(state, BuildTrainingModels(*s.model, graph), static_cast<int>(state.range(0)));
}

void ModelQatTrainStep(benchmark::State& state) {
  const Setup* setup = SetupOrSkip(state);
  if (setup == nullptr) return;
  const Setup& s = *setup;
  TimeTrainStep(state,
                QatTrainingModels(*s.model, s.batch.at(s.input), s.batch.at("labels"),
                                  static_cast<QuantParamMode>(state.range(0))),
                static_cast<int>(state.range(1)));
}

BENCHMARK(ModelForward)
    ->ArgsProduct({{1, 2}, {1, 0}})
    ->ArgNames({"threads", "fuse"})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(ModelTrainStep)->Arg(1)->Arg(2)->ArgName("threads")->Unit(benchmark::kMillisecond);
BENCHMARK(ModelQatTrainStep)
    ->ArgsProduct({{kFixed, kObserve, kLearn}, {1, 2}})
    ->ArgNames({"mode", "threads"})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace qat

BENCHMARK_MAIN();
