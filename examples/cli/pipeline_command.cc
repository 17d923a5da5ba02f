// qat pipeline: the whole journey on Fashion-MNIST, as the README's main job.
//
//   fp32 model (the 784-500-10 MLP unless --model) -> train fp32 -> evaluate
//   -> calibrate -> quantize (PTQ, int8 per channel) -> evaluate
//   -> fuse QDQ into FakeQuant -> QAT fine-tuning -> export int8 -> evaluate
//
// Everything lands in --out: the models, the calibration table, the
// checkpoints, report.json and loss.svg (the training loss curves).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli_common.h"
#include "commands.h"
#include "progress.h"
#include "qat/calibrate.h"
#include "qat/executor.h"
#include "qat/model_zoo.h"
#include "qat/qdq_conversion.h"
#include "qat/quantize.h"
#include "qat/trainer.h"
#include "qat/training_artifacts.h"

namespace qat_cli {
namespace {

struct Stage {
  std::string name;
  double accuracy = 0.0;
  size_t bytes = 0;
  double seconds = 0.0;
};

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Accuracy of an inference model (first output = logits) on a dataset.
absl::StatusOr<double> Accuracy(const qat::Model& model, const qat::Dataset& data,
                                int threads) {
  qat::ExecutorOptions options;
  options.num_threads = threads;
  auto exec = qat::Executor::Create(model, options);
  if (!exec.ok()) return exec.status();
  const std::string input = model.inputs()[0].name;
  const std::string logits = model.outputs()[0].name;
  const std::vector<int64_t> order = qat::EpochOrder(data.size(), 0, 0, false);
  int64_t correct = 0;
  qat::Tensor x, y;
  for (int64_t begin = 0; begin < data.size(); begin += 256) {
    const int64_t end = std::min(data.size(), begin + 256);
    data.Gather(absl::MakeConstSpan(order).subspan(begin, end - begin), &x, &y);
    auto out = (*exec)->Run({{input, x}});
    if (!out.ok()) return out.status();
    const qat::Tensor& z = out->at(logits);
    const int64_t classes = z.dim(1);
    for (int64_t i = 0; i < end - begin; ++i) {
      const float* row = z.data<float>() + i * classes;
      correct += (std::max_element(row, row + classes) - row) == y.data<int64_t>()[i];
    }
  }
  return static_cast<double>(correct) / data.size();
}

// Trains `models` for each (epochs, lr) phase; appends the mean loss of every
// `every` steps to *curve.  Returns the trained parameters.
absl::StatusOr<std::map<std::string, qat::Tensor>> Train(
    const qat::TrainingModels& models, const qat::Dataset& data,
    const std::vector<std::pair<int64_t, float>>& phases, int64_t batch, int threads,
    uint64_t seed, const std::string& label, std::vector<double>* curve) {
  std::map<std::string, qat::Tensor> params;
  qat::Checkpoint carry;  // parameters handed from one phase to the next
  bool first = true;
  int64_t total_epochs = 0;
  for (const auto& [epochs, lr] : phases) total_epochs += epochs;
  int64_t done_epochs = 0;
  for (const auto& phase : phases) {
    const int64_t epochs = phase.first;  // plain locals: lambdas capture them
    const float lr = phase.second;
    qat::TrainerOptions options;
    options.schedule.lr = lr;
    options.num_threads = threads;
    options.seed = seed + static_cast<uint64_t>(done_epochs);
    auto trainer = qat::Trainer::Create(models, options);
    if (!trainer.ok()) return trainer.status();
    if (!first) {
      if (absl::Status s = (*trainer)->RestoreCheckpoint(carry); !s.ok()) return s;
    }
    first = false;
    std::unique_ptr<Progress> bar;
    double sum = 0.0;
    int64_t count = 0;
    const int64_t every = 50;
    absl::Status s = (*trainer)->TrainEpochs(
        data, epochs, batch, [&](const qat::StepReport& r) -> absl::Status {
          if (r.step_in_epoch == 0) {
            bar = std::make_unique<Progress>(
                absl::StrCat(label, " epoch ", done_epochs + r.epoch + 1, "/", total_epochs,
                             " (lr ", absl::StrFormat("%g", lr), ")"),
                r.steps_per_epoch);
          }
          sum += r.loss;
          if (++count == every) {
            curve->push_back(sum / count);
            sum = 0.0;
            count = 0;
          }
          bar->Update(r.step_in_epoch + 1,
                      absl::StrFormat("loss %.4f", curve->empty() ? r.loss : curve->back()));
          return absl::OkStatus();
        });
    if (!s.ok()) return s;
    done_epochs += epochs;
    carry = qat::Checkpoint();
    carry.parameters = (*trainer)->MakeCheckpoint().parameters;
    carry.progress.seed = options.seed + 1;
  }
  for (auto& [name, value] : carry.parameters) params[name] = value;
  return params;
}

// A small SVG with one polyline per curve.
std::string LossPlot(const std::vector<std::pair<std::string, std::vector<double>>>& curves) {
  double hi = 0.0;
  size_t n = 1;
  for (const auto& [name, c] : curves) {
    for (double v : c) hi = std::max(hi, v);
    n = std::max(n, c.size());
  }
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c"};
  std::string svg =
      "<svg xmlns='http://www.w3.org/2000/svg' width='640' height='360'>"
      "<rect width='640' height='360' fill='white'/>"
      "<text x='320' y='20' text-anchor='middle' font-family='sans-serif'>training loss "
      "(mean of 50 steps)</text>"
      "<line x1='50' y1='320' x2='620' y2='320' stroke='black'/>"
      "<line x1='50' y1='40' x2='50' y2='320' stroke='black'/>";
  absl::StrAppend(&svg, "<text x='45' y='45' text-anchor='end' font-size='11'>",
                  absl::StrFormat("%.2f", hi), "</text>",
                  "<text x='45' y='320' text-anchor='end' font-size='11'>0</text>");
  for (size_t k = 0; k < curves.size(); ++k) {
    std::vector<std::string> points;
    for (size_t i = 0; i < curves[k].second.size(); ++i) {
      const double x = 50.0 + 570.0 * i / std::max<size_t>(1, n - 1);
      const double y = 320.0 - 280.0 * curves[k].second[i] / std::max(hi, 1e-9);
      points.push_back(absl::StrFormat("%.1f,%.1f", x, y));
    }
    absl::StrAppend(&svg, "<polyline fill='none' stroke='", colors[k % 3], "' points='",
                    absl::StrJoin(points, " "), "'/>", "<text x='560' y='",
                    60 + 16 * k, "' fill='", colors[k % 3],
                    "' font-family='sans-serif' font-size='12'>", curves[k].first, "</text>");
  }
  return svg + "</svg>\n";
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot write '", path, "'"));
  return absl::OkStatus();
}

}  // namespace

int PipelineCommand(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv,
                 {"--model", "--data", "--out", "--epochs", "--qat-epochs", "--threads",
                  "--seed", "--limit", "--batch", "--calibration-samples", "--method"},
                 {}, &args, &error)) {
    return Usage(error);
  }
  if (!args.positional.empty()) return Usage("pipeline takes options only");
  int64_t epochs = 3, qat_epochs = 1, threads = 0, seed = 0, limit = 0, batch = 64;
  int64_t calibration_samples = 1000;
  if (!IntFlag(args, "--epochs", 0, &epochs) || !IntFlag(args, "--qat-epochs", 0, &qat_epochs) ||
      !IntFlag(args, "--threads", 0, &threads) || !IntFlag(args, "--seed", 0, &seed) ||
      !IntFlag(args, "--limit", 0, &limit) || !IntFlag(args, "--batch", 1, &batch) ||
      !IntFlag(args, "--calibration-samples", 1, &calibration_samples)) {
    return Usage("a numeric option is out of range or does not parse");
  }
  auto method = qat::ParseCalibrationMethod(args.Get("--method", "percentile"));
  if (!method.ok()) return Usage(std::string(method.status().message()));
  const std::string out = args.Get("--out", "qat-pipeline");
  const std::string data_dir = args.Get("--data", qat::kFashionMnistDir);
  const int nthreads = static_cast<int>(threads);

  // 1. The fp32 model: the user's, or the zoo MLP trained here.
  const bool own_model = !args.Has("--model");
  auto model = own_model ? qat::MakeMlp() : qat::Model::Load(args.Get("--model", ""));
  if (!model.ok()) return Fail(model.status());
  auto train = LoadData(data_dir, *model, "train", limit);
  if (!train.ok()) return Fail(train.status());
  auto test = LoadData(data_dir, *model, "test", 0);
  if (!test.ok()) return Fail(test.status());
  if (absl::Status s = qat::SaveTrainingArtifacts(out + "/fp32", *qat::BuildTrainingModels(*model, {})); !s.ok()) {
    return Fail(s);
  }
  std::vector<Stage> stages;
  std::vector<std::pair<std::string, std::vector<double>>> curves;
  double t0 = Now();
  qat::Model fp32 = *model;
  if (own_model && epochs > 0) {
    auto models = qat::BuildTrainingModels(*model, {});
    if (!models.ok()) return Fail(models.status());
    std::vector<double> curve;
    // The recipe: AdamW at 1e-3 for `epochs` epochs, then one at 1e-4.
    auto params = Train(*models, *train, {{epochs, 1e-3f}, {1, 1e-4f}}, batch, nthreads,
                        static_cast<uint64_t>(seed), "fp32", &curve);
    if (!params.ok()) return Fail(params.status());
    auto trained = qat::ExportInferenceModel(models->eval, *params);
    if (!trained.ok()) return Fail(trained.status());
    fp32 = *trained;
    curves.emplace_back("fp32", curve);
  }
  if (absl::Status s = qat::SaveModel(fp32, out + "/fp32.onnx"); !s.ok()) return Fail(s);
  auto fp32_acc = Accuracy(fp32, *test, nthreads);
  if (!fp32_acc.ok()) return Fail(fp32_acc.status());
  stages.push_back({"fp32", *fp32_acc, fp32.Serialize().size(), Now() - t0});

  // 2. Post-training quantization.
  t0 = Now();
  qat::CalibrateOptions co;
  co.method = *method;
  co.max_samples = calibration_samples;
  co.per_channel_weights = true;
  co.num_threads = nthreads;
  auto table = qat::Calibrate(fp32, *train, co);
  if (!table.ok()) return Fail(table.status());
  if (absl::Status s = table->Save(out + "/calibration.json"); !s.ok()) return Fail(s);
  qat::QuantizeOptions qo;
  qo.per_channel = true;
  auto qdq = qat::QuantizeModel(fp32, *table, qo);  // float weights: QAT's start
  if (!qdq.ok()) return Fail(qdq.status());
  qo.weights_as_int8 = true;
  auto ptq = qat::QuantizeModel(fp32, *table, qo);
  if (!ptq.ok()) return Fail(ptq.status());
  if (absl::Status s = qat::SaveModel(*ptq, out + "/ptq_int8.onnx"); !s.ok()) return Fail(s);
  auto ptq_acc = Accuracy(*ptq, *test, nthreads);
  if (!ptq_acc.ok()) return Fail(ptq_acc.status());
  stages.push_back({absl::StrCat("ptq int8 (", qat::CalibrationMethodName(*method), ")"),
                    *ptq_acc, ptq->Serialize().size(), Now() - t0});

  // 3. Quantization-aware training from the PTQ model, and the int8 export.
  t0 = Now();
  auto fused = qat::FuseQdqToFakeQuant(*qdq);
  if (!fused.ok()) return Fail(fused.status());
  auto qat_models = qat::BuildTrainingModels(*fused, {});
  if (!qat_models.ok()) return Fail(qat_models.status());
  if (absl::Status s = qat::SaveTrainingArtifacts(out + "/qat", *qat_models); !s.ok()) {
    return Fail(s);
  }
  std::map<std::string, qat::Tensor> qat_params;
  if (qat_epochs > 0) {
    std::vector<double> curve;
    auto params = Train(*qat_models, *train, {{qat_epochs, 1e-4f}}, batch, nthreads,
                        static_cast<uint64_t>(seed) + 100, "qat", &curve);
    if (!params.ok()) return Fail(params.status());
    qat_params = *params;
    curves.emplace_back("qat", curve);
  }
  auto exported = qat::ExportQuantizedModel(qat_models->eval, qat_params);
  if (!exported.ok()) return Fail(exported.status());
  if (absl::Status s = qat::SaveModel(*exported, out + "/qat_int8.onnx"); !s.ok()) return Fail(s);
  auto qat_acc = Accuracy(*exported, *test, nthreads);
  if (!qat_acc.ok()) return Fail(qat_acc.status());
  stages.push_back({"qat int8", *qat_acc, exported->Serialize().size(), Now() - t0});

  if (!curves.empty()) {
    if (absl::Status s = WriteText(out + "/loss.svg", LossPlot(curves)); !s.ok()) return Fail(s);
  }
  std::string json = "{\"stages\": [";
  std::printf("\n%-28s %10s %12s %10s\n", "stage", "accuracy", "model bytes", "seconds");
  for (size_t i = 0; i < stages.size(); ++i) {
    const Stage& s = stages[i];
    std::printf("%-28s %9.2f%% %12zu %10.1f\n", s.name.c_str(), 100 * s.accuracy, s.bytes,
                s.seconds);
    absl::StrAppend(&json, i ? ", " : "", "{\"stage\": \"", s.name, "\", \"accuracy\": ",
                    absl::StrFormat("%.4f", s.accuracy), ", \"bytes\": ", s.bytes,
                    ", \"seconds\": ", absl::StrFormat("%.1f", s.seconds), "}");
  }
  json += "]}\n";
  if (absl::Status s = WriteText(out + "/report.json", json); !s.ok()) return Fail(s);
  std::printf("\nwrote %s/{fp32.onnx,ptq_int8.onnx,qat_int8.onnx,calibration.json,report.json%s}\n",
              out.c_str(), curves.empty() ? "" : ",loss.svg");
  std::printf("%s", json.c_str());
  return 0;
}

}  // namespace qat_cli
