// qat pipeline: the whole journey on Fashion-MNIST, as the README's main job.
//
//   fp32 model (the 784-500-10 MLP, LeNet-5 with --zoo lenet5, or --model)
//   -> train fp32 (AdamW 1e-3 for --epochs, then 1 epoch at 1e-4; none
//      with --epochs 0, for a model that is already trained)
//   -> calibrate (1000 training samples) -> PTQ int8 (per-channel weights)
//   -> QAT int8 and QAT W4A8 (4-bit per-channel weights, 8-bit activations):
//      QDQ -> FakeQuant -> train --qat-epochs at --qat-lr -> export
//   -> evaluate every model in our executor and in ONNX Runtime (node)
//
// Everything lands in --out: the models, calibration tables, training
// folders, report.json / report.md (the table), accuracy.svg and loss.svg
// (per-epoch curves), activation_histogram.svg (a layer's activations with
// the calibrated range marked) and graph_*.dot / .svg (the graphs).
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "activation_probe.h"
#include "cli_common.h"
#include "commands.h"
#include "graph_dot.h"
#include "ort_runner.h"
#include "pipeline_report.h"
#include "progress.h"
#include "qat/calibrate.h"
#include "qat/executor.h"
#include "qat/model_zoo.h"
#include "qat/qdq_conversion.h"
#include "qat/quantize.h"
#include "qat/status_macros.h"
#include "qat/trainer.h"
#include "qat/training_artifacts.h"
#include "svg_plot.h"

namespace qat_cli {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct PipelineOptions {
  std::string zoo = "mlp";  // when model_path is empty
  std::string model_path;
  std::string data_dir;
  std::string out;
  int64_t epochs = 3;  // fp32 at 1e-3, then one epoch at 1e-4; 0: no fp32 training
  int64_t qat_epochs = 1;
  double qat_lr = 1e-4;
  // Cosine decay from qat_lr to 0 over the QAT epoch(s): a constant rate
  // leaves the last steps' noise, and the flipping of weights that sit near
  // a rounding boundary, in the final weights; decaying it settles them.
  // Measured in docs/cli.md: better mean and worst case than constant on
  // both models and both bit widths.
  qat::LrScheduleKind qat_schedule = qat::LrScheduleKind::kCosine;
  // LSQ: QAT learns the scales and zero points, so the calibration only
  // sets the starting point.  Measured (docs/cli.md): the same accuracy as
  // fixed parameters at int8, and slightly better at W4A8 on both the MLP
  // and LeNet-5, as the LSQ paper leads one to expect for coarse grids.
  bool learn_quant_params = true;
  qat::CalibrationMethod ptq_method = qat::CalibrationMethod::kPercentile;
  // QAT starts from the PTQ table by default: QAT fine-tunes the PTQ model.
  qat::CalibrationMethod qat_method = qat::CalibrationMethod::kPercentile;
  int64_t calibration_samples = 1000;
  int64_t batch = 64;
  int64_t limit = 0;       // training examples (0: all)
  int64_t test_limit = 0;  // test examples (0: all)
  int threads = 0;
  uint64_t seed = 0;
  bool use_ort = true;
  std::string ort_script_dir;
  double latency_seconds = 1.0;
};

// Median wall time of one Run on a batch of `batch` test examples, with one
// kernel thread (ONNX Runtime gets one too).
absl::StatusOr<double> LatencyMs(const qat::Model& model, const qat::Dataset& test,
                                 int64_t batch, double seconds) {
  qat::ExecutorOptions options;
  options.num_threads = 1;
  QAT_ASSIGN_OR_RETURN(auto exec, qat::Executor::Create(model, options));
  std::vector<int64_t> indices(static_cast<size_t>(std::min(batch, test.size())));
  for (size_t i = 0; i < indices.size(); ++i) indices[i] = static_cast<int64_t>(i);
  qat::Tensor x, y;
  test.Gather(indices, &x, &y);
  const std::map<std::string, qat::Tensor> feeds = {{model.inputs()[0].name, x}};
  for (int i = 0; i < 5; ++i) QAT_RETURN_IF_ERROR(exec->Run(feeds).status());
  std::vector<double> times;
  const double begin = Now();
  while (times.size() < 10 || Now() - begin < seconds) {
    const double t0 = Now();
    QAT_RETURN_IF_ERROR(exec->Run(feeds).status());
    times.push_back(1e3 * (Now() - t0));
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

// Accuracy of an inference model (first output = logits) on a dataset.
absl::StatusOr<double> Accuracy(const qat::Model& model, const qat::Dataset& data,
                                int threads) {
  qat::ExecutorOptions options;
  options.num_threads = threads;
  QAT_ASSIGN_OR_RETURN(auto exec, qat::Executor::Create(model, options));
  const std::string input = model.inputs()[0].name;
  const std::string logits = model.outputs()[0].name;
  const std::vector<int64_t> order = qat::EpochOrder(data.size(), 0, 0, false);
  int64_t correct = 0;
  qat::Tensor x, y;
  for (int64_t begin = 0; begin < data.size(); begin += 256) {
    const int64_t end = std::min(data.size(), begin + 256);
    data.Gather(absl::MakeConstSpan(order).subspan(begin, end - begin), &x, &y);
    QAT_ASSIGN_OR_RETURN(auto out, exec->Run({{input, x}}));
    const qat::Tensor& z = out.at(logits);
    const int64_t classes = z.dim(1);
    for (int64_t i = 0; i < end - begin; ++i) {
      const float* row = z.data<float>() + i * classes;
      correct += (std::max_element(row, row + classes) - row) == y.data<int64_t>()[i];
    }
  }
  return static_cast<double>(correct) / data.size();
}

// Trains `models` through the (epochs, lr) phases, each with a fresh AdamW
// (as chained `qat train` calls do), and evaluates on `test` after every
// epoch.  With `evaluate_start`, the model is evaluated once before training
// too.  Points are numbered from `first_epoch`.  Returns the parameters.
absl::StatusOr<std::map<std::string, qat::Tensor>> Train(
    const qat::TrainingModels& models, const qat::Dataset& train, const qat::Dataset& test,
    const std::vector<std::pair<int64_t, float>>& phases, const PipelineOptions& o,
    uint64_t seed, double first_epoch, bool evaluate_start, StageCurve* curve,
    qat::LrScheduleKind schedule = qat::LrScheduleKind::kConstant) {
  qat::Checkpoint carry;  // parameters handed from one phase to the next
  bool first = true;
  int64_t total_epochs = 0, done = 0;
  for (const auto& [epochs, lr] : phases) total_epochs += epochs;
  for (const auto& phase : phases) {
    const float lr = phase.second;
    qat::TrainerOptions options;
    options.schedule.lr = lr;
    options.schedule.kind = schedule;  // decaying schedules reach 0 at the phase's end
    options.schedule.total_steps = phase.first * ((train.size() + o.batch - 1) / o.batch);
    options.num_threads = o.threads;
    options.seed = seed + static_cast<uint64_t>(done);
    QAT_ASSIGN_OR_RETURN(auto trainer, qat::Trainer::Create(models, options));
    if (!first) QAT_RETURN_IF_ERROR(trainer->RestoreCheckpoint(carry));
    if (first && evaluate_start) {
      QAT_ASSIGN_OR_RETURN(qat::EvalMetrics m, trainer->Evaluate(test, 256));
      curve->points.push_back({first_epoch, -1.0, m.loss, m.accuracy});
    }
    first = false;
    for (int64_t e = 1; e <= phase.first; ++e) {
      std::unique_ptr<Progress> bar;
      double sum = 0.0;
      int64_t count = 0;
      QAT_RETURN_IF_ERROR(trainer->TrainEpochs(
          train, e, o.batch, [&](const qat::StepReport& r) -> absl::Status {
            if (!bar) {
              bar = std::make_unique<Progress>(
                  absl::StrCat(curve->name, " epoch ", done + 1, "/", total_epochs, " (lr ",
                               absl::StrFormat("%g", lr), ")"),
                  r.steps_per_epoch);
            }
            sum += r.loss;
            ++count;
            bar->Update(r.step_in_epoch + 1, absl::StrFormat("loss %.4f", sum / count));
            return absl::OkStatus();
          }));
      ++done;
      QAT_ASSIGN_OR_RETURN(qat::EvalMetrics m, trainer->Evaluate(test, 256));
      curve->points.push_back({first_epoch + static_cast<double>(done),
                               count ? sum / count : 0.0, m.loss, m.accuracy});
      std::fprintf(stderr, "%s epoch %lld: train loss %.4f, test loss %.4f, test accuracy %.2f%%\n",
                   curve->name.c_str(), static_cast<long long>(done), curve->points.back().train_loss,
                   m.loss, 100 * m.accuracy);
    }
    carry = qat::Checkpoint();
    carry.parameters = trainer->MakeCheckpoint().parameters;
    carry.progress.seed = options.seed + 1;
  }
  std::map<std::string, qat::Tensor> params;
  for (auto& [name, value] : carry.parameters) params[name] = value;
  return params;
}

absl::Status WriteDot(const qat::Model& model, const std::string& out, const std::string& stem,
                      const std::string& title, PipelineReport* report) {
  QAT_ASSIGN_OR_RETURN(std::string dot, ModelToDot(model, title));
  QAT_RETURN_IF_ERROR(WriteText(absl::StrCat(out, "/", stem, ".dot"), dot));
  report->artifacts.push_back(stem + ".dot");
  if (HaveGraphviz()) {
    QAT_RETURN_IF_ERROR(RenderDotToSvg(absl::StrCat(out, "/", stem, ".dot"),
                                       absl::StrCat(out, "/", stem, ".svg")));
    report->artifacts.push_back(stem + ".svg");
  }
  return absl::OkStatus();
}

// The curves: accuracy.svg (test accuracy) and loss.svg (train and test
// loss), one series per stage, x in epochs of the whole run.
absl::Status WriteCurves(const std::string& out, PipelineReport* report) {
  PlotSpec accuracy{"test accuracy per epoch", "epoch", "test accuracy (%)"};
  PlotSpec loss{"loss per epoch", "epoch", "cross-entropy loss"};
  accuracy.integer_x = loss.integer_x = true;
  loss.y_from_zero = true;
  for (const StageCurve& c : report->curves) {
    PlotSeries acc{c.name}, train{c.name + " train"}, test{c.name + " test"};
    test.dashed = true;
    for (const EpochPoint& p : c.points) {
      acc.x.push_back(p.epoch);
      acc.y.push_back(100 * p.test_accuracy);
      test.x.push_back(p.epoch);
      test.y.push_back(p.test_loss);
      if (p.train_loss >= 0) {
        train.x.push_back(p.epoch);
        train.y.push_back(p.train_loss);
      }
    }
    accuracy.series.push_back(acc);
    loss.series.push_back(train);
    loss.series.push_back(test);
  }
  QAT_RETURN_IF_ERROR(WriteText(out + "/accuracy.svg", RenderSvgPlot(accuracy)));
  QAT_RETURN_IF_ERROR(WriteText(out + "/loss.svg", RenderSvgPlot(loss)));
  report->artifacts.push_back("accuracy.svg");
  report->artifacts.push_back("loss.svg");
  return absl::OkStatus();
}

// activation_histogram.svg: the values of the first hidden activation (as
// fp32 computes it on the calibration samples), with the calibrated ranges
// that PTQ and QAT start from marked.
absl::Status WriteHistogram(const qat::Model& fp32, const qat::Dataset& train,
                            const std::vector<std::pair<std::string, const qat::CalibrationTable*>>& tables,
                            const PipelineOptions& o, PipelineReport* report) {
  QAT_ASSIGN_OR_RETURN(std::string tensor,
                       FirstHiddenActivation(fp32, {"MatMul", "Gemm", "Conv"}));
  QAT_ASSIGN_OR_RETURN(std::vector<float> values,
                       CollectActivation(fp32, tensor, train, o.calibration_samples, o.threads));
  if (values.empty()) return absl::OkStatus();
  double lo = *std::min_element(values.begin(), values.end());
  double hi = *std::max_element(values.begin(), values.end());
  PlotSpec plot{absl::StrCat("activation '", tensor, "' on ", o.calibration_samples,
                             " calibration samples"),
                "value", "count"};
  plot.log_y = true;
  for (const auto& [label, table] : tables) {
    const qat::CalibrationEntry* entry = table->Find(tensor);
    if (entry == nullptr) continue;
    lo = std::min<double>(lo, entry->rmin[0]);
    hi = std::max<double>(hi, entry->rmax[0]);
    plot.markers.push_back({entry->rmin[0], absl::StrFormat("%s rmin %.3g", label, entry->rmin[0])});
    plot.markers.push_back({entry->rmax[0], absl::StrFormat("%s rmax %.3g", label, entry->rmax[0])});
  }
  // Two markers at the same place would overprint: keep one caption.
  for (size_t i = 1; i < plot.markers.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (std::abs(plot.markers[i].x - plot.markers[j].x) < 1e-6 * (hi - lo + 1)) {
        plot.markers[j].label += " = " + plot.markers[i].label;
        plot.markers.erase(plot.markers.begin() + static_cast<std::ptrdiff_t>(i--));
        break;
      }
    }
  }
  const int bins = 100;
  const double width = (hi - lo) / bins > 0 ? (hi - lo) / bins : 1.0;
  PlotSeries series{absl::StrCat(values.size(), " values")};
  series.bars = true;
  series.bar_width = width;
  std::vector<double> counts(bins, 0.0);
  for (float v : values) {
    counts[std::min<size_t>(bins - 1, static_cast<size_t>((v - lo) / width))] += 1;
  }
  for (int i = 0; i < bins; ++i) {
    series.x.push_back(lo + i * width);
    series.y.push_back(counts[i]);
  }
  plot.series.push_back(series);
  QAT_RETURN_IF_ERROR(WriteText(o.out + "/activation_histogram.svg", RenderSvgPlot(plot)));
  report->artifacts.push_back("activation_histogram.svg");
  report->histogram_tensor = tensor;
  return absl::OkStatus();
}

absl::Status SaveModelArtifact(const qat::Model& model, const std::string& file,
                               PipelineReport* report, const PipelineOptions& o) {
  QAT_RETURN_IF_ERROR(qat::SaveModel(model, absl::StrCat(o.out, "/", file)));
  report->artifacts.push_back(file);
  return absl::OkStatus();
}

size_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<size_t>(st.st_size) : 0;
}

// One QAT run: quantize fp32 with the QAT table (float weights behind QDQ),
// fuse into FakeQuant, train, export.
struct QatStage {
  std::string name, stem;  // "qat int8", "qat_int8"
  int weight_bits = 8;
};

absl::StatusOr<ModelRow> RunQat(const QatStage& stage, const qat::Model& fp32,
                                const qat::CalibrationTable& table, const qat::Dataset& train,
                                const qat::Dataset& test, double first_epoch,
                                const PipelineOptions& o, PipelineReport* report,
                                qat::Model* exported_out) {
  const double t0 = Now();
  qat::QuantizeOptions qo;
  qo.per_channel = true;
  qo.weight_bits = stage.weight_bits;
  QAT_ASSIGN_OR_RETURN(qat::Model qdq, qat::QuantizeModel(fp32, table, qo));
  const std::string qdq_file = absl::StrCat("qdq_", stage.stem.substr(4), ".onnx");
  QAT_RETURN_IF_ERROR(SaveModelArtifact(qdq, qdq_file, report, o));
  QAT_ASSIGN_OR_RETURN(qat::Model fused, qat::FuseQdqToFakeQuant(qdq));
  qat::TrainingGraphOptions go;
  go.learn_quant_params = o.learn_quant_params;
  QAT_ASSIGN_OR_RETURN(qat::TrainingModels models, qat::BuildTrainingModels(fused, go));
  QAT_RETURN_IF_ERROR(qat::SaveTrainingArtifacts(absl::StrCat(o.out, "/", stage.stem), models));
  report->artifacts.push_back(stage.stem + "/");
  if (stage.weight_bits == 8) {
    QAT_RETURN_IF_ERROR(WriteDot(qdq, o.out, "graph_qdq", "QDQ model (int8, float weights)", report));
    QAT_RETURN_IF_ERROR(WriteDot(models.training, o.out, "graph_fakequant_training",
                                 "FakeQuant training graph (loss and gradients)", report));
  }
  StageCurve curve{stage.name};
  std::map<std::string, qat::Tensor> params;
  if (o.qat_epochs > 0) {
    QAT_ASSIGN_OR_RETURN(params, Train(models, train, test,
                                       {{o.qat_epochs, static_cast<float>(o.qat_lr)}}, o,
                                       o.seed + 100 + static_cast<uint64_t>(stage.weight_bits),
                                       first_epoch, true, &curve, o.qat_schedule));
  }
  QAT_ASSIGN_OR_RETURN(qat::Model exported, qat::ExportQuantizedModel(models.eval, params));
  const std::string file = stage.stem + ".onnx";
  QAT_RETURN_IF_ERROR(SaveModelArtifact(exported, file, report, o));
  ModelRow row;
  row.name = stage.name;
  row.file = file;
  row.recipe = absl::StrFormat(
      "%s calibration, %d-bit per-channel weights, uint8 activations; QAT %lld epoch(s) AdamW "
      "lr %g (%s), quantization parameters %s; exported as QDQ%s",
      qat::CalibrationMethodName(o.qat_method), stage.weight_bits,
      static_cast<long long>(o.qat_epochs), o.qat_lr, qat::LrScheduleKindName(o.qat_schedule),
      o.learn_quant_params ? "learned (LSQ)" : "fixed",
      stage.weight_bits == 4 ? " (4-bit values in int8 initializers; before training, Q -> "
                               "Clip(-8, 7) -> DQ at opset 13)"
                             : "");
  if (!curve.points.empty()) {
    row.start_accuracy = curve.points.front().test_accuracy;
    report->curves.push_back(curve);
  }
  QAT_ASSIGN_OR_RETURN(row.accuracy, Accuracy(exported, test, o.threads));
  row.seconds = Now() - t0;
  *exported_out = exported;
  return row;
}

absl::Status RunPipeline(const PipelineOptions& o) {
  const double start = Now();
  ::mkdir(o.out.c_str(), 0755);
  PipelineReport report;
  report.model = o.model_path.empty() ? "zoo:" + o.zoo : o.model_path;
  report.data = o.data_dir;
  report.settings = absl::StrFormat(
      "{\"epochs\": %d, \"qat_epochs\": %d, \"qat_lr\": %g, \"qat_schedule\": \"%s\", "
      "\"qat_quant_params\": \"%s\", \"ptq_method\": \"%s\", \"qat_method\": \"%s\", "
      "\"calibration_samples\": %d, \"batch\": %d, \"limit\": %d, \"test_limit\": %d, \"threads\": %d, \"seed\": %d}",
      o.epochs, o.qat_epochs, o.qat_lr, qat::LrScheduleKindName(o.qat_schedule),
      o.learn_quant_params ? "learn" : "fixed", qat::CalibrationMethodName(o.ptq_method),
      qat::CalibrationMethodName(o.qat_method), o.calibration_samples, o.batch, o.limit, o.test_limit,
      o.threads, o.seed);

  // 1. The fp32 model: the user's, or a zoo model trained here.
  qat::Model model = *qat::MakeMlp();
  if (!o.model_path.empty()) {
    QAT_ASSIGN_OR_RETURN(model, qat::Model::Load(o.model_path));
  } else if (o.zoo == "lenet5") {
    QAT_ASSIGN_OR_RETURN(model, qat::MakeLeNet5());
  }
  QAT_ASSIGN_OR_RETURN(qat::Dataset train, LoadData(o.data_dir, model, "train", o.limit));
  QAT_ASSIGN_OR_RETURN(qat::Dataset test, LoadData(o.data_dir, model, "test", o.test_limit));
  std::vector<int64_t> example_shape = test.features().shape();
  example_shape.erase(example_shape.begin());
  report.latency_batch = o.batch;
  QAT_RETURN_IF_ERROR(SaveModelArtifact(model, "untrained.onnx", &report, o));

  // 2. fp32 training: AdamW 1e-3 for `epochs`, then one epoch at 1e-4.
  double t0 = Now();
  qat::Model fp32 = model;
  if (o.epochs > 0) {
    QAT_ASSIGN_OR_RETURN(qat::TrainingModels models, qat::BuildTrainingModels(model, {}));
    QAT_RETURN_IF_ERROR(qat::SaveTrainingArtifacts(o.out + "/fp32", models));
    report.artifacts.push_back("fp32/");
    StageCurve curve{"fp32"};
    QAT_ASSIGN_OR_RETURN(auto params, Train(models, train, test, {{o.epochs, 1e-3f}, {1, 1e-4f}},
                                            o, o.seed, 0.0, false, &curve));
    QAT_ASSIGN_OR_RETURN(fp32, qat::ExportInferenceModel(models.eval, params));
    report.curves.push_back(curve);
  }
  const double fp32_epochs = report.curves.empty() ? 0.0 : report.curves[0].points.back().epoch;
  QAT_RETURN_IF_ERROR(SaveModelArtifact(fp32, "fp32.onnx", &report, o));
  QAT_RETURN_IF_ERROR(WriteDot(fp32, o.out, "graph_fp32", "fp32 model", &report));
  ModelRow fp32_row{"fp32", "fp32.onnx"};
  fp32_row.recipe = o.epochs > 0
                        ? absl::StrFormat("AdamW lr 1e-3 for %lld epoch(s), then 1 epoch at 1e-4, "
                                          "batch %lld",
                                          static_cast<long long>(o.epochs),
                                          static_cast<long long>(o.batch))
                        : "as given (--epochs 0)";
  QAT_ASSIGN_OR_RETURN(fp32_row.accuracy, Accuracy(fp32, test, o.threads));
  fp32_row.seconds = Now() - t0;
  std::vector<std::pair<ModelRow, qat::Model>> rows = {{fp32_row, fp32}};

  // 3. Calibration and post-training quantization (int8 weights stored).
  t0 = Now();
  qat::CalibrateOptions co;
  co.method = o.ptq_method;
  co.max_samples = o.calibration_samples;
  co.per_channel_weights = true;
  co.num_threads = o.threads;
  QAT_ASSIGN_OR_RETURN(qat::CalibrationTable ptq_table, qat::Calibrate(fp32, train, co));
  QAT_RETURN_IF_ERROR(ptq_table.Save(o.out + "/calibration.json"));
  report.artifacts.push_back("calibration.json");
  qat::QuantizeOptions qo;
  qo.per_channel = true;
  qo.weights_as_int8 = true;
  QAT_ASSIGN_OR_RETURN(qat::Model ptq, qat::QuantizeModel(fp32, ptq_table, qo));
  QAT_RETURN_IF_ERROR(SaveModelArtifact(ptq, "ptq_int8.onnx", &report, o));
  ModelRow ptq_row{"ptq int8", "ptq_int8.onnx"};
  ptq_row.recipe = absl::StrFormat(
      "%s calibration on %lld training samples, int8 per-channel weights, uint8 activations",
      qat::CalibrationMethodName(o.ptq_method), static_cast<long long>(o.calibration_samples));
  QAT_ASSIGN_OR_RETURN(ptq_row.accuracy, Accuracy(ptq, test, o.threads));
  ptq_row.seconds = Now() - t0;
  rows.push_back({ptq_row, ptq});

  // 4. QAT int8 and W4A8, from the QAT calibration table.
  qat::CalibrationTable qat_table = ptq_table;
  if (o.qat_method != o.ptq_method) {
    co.method = o.qat_method;
    QAT_ASSIGN_OR_RETURN(qat_table, qat::Calibrate(fp32, train, co));
    QAT_RETURN_IF_ERROR(qat_table.Save(o.out + "/calibration_qat.json"));
    report.artifacts.push_back("calibration_qat.json");
  }
  for (const QatStage& stage : {QatStage{"qat int8", "qat_int8", 8},
                                QatStage{"qat w4a8", "qat_w4a8", 4}}) {
    qat::Model exported = fp32;
    QAT_ASSIGN_OR_RETURN(ModelRow row, RunQat(stage, fp32, qat_table, train, test, fp32_epochs,
                                              o, &report, &exported));
    QAT_RETURN_IF_ERROR(WriteDot(exported, o.out, absl::StrCat("graph_", stage.stem, "_exported"),
                                 absl::StrCat("exported ", stage.name, " QDQ model"), &report));
    rows.push_back({row, exported});
  }

  // 5. Pictures: curves, the activation histogram.
  QAT_RETURN_IF_ERROR(WriteCurves(o.out, &report));
  std::vector<std::pair<std::string, const qat::CalibrationTable*>> tables = {
      {qat::CalibrationMethodName(o.ptq_method), &ptq_table}};
  if (o.qat_method != o.ptq_method) {
    tables.push_back({qat::CalibrationMethodName(o.qat_method), &qat_table});
  }
  QAT_RETURN_IF_ERROR(WriteHistogram(fp32, train, tables, o, &report));

  // 6. Evaluation: file size and latency here, accuracy and latency in ORT.
  const std::string script_dir = o.use_ort ? FindOrtScriptDir(o.ort_script_dir) : "";
  for (auto& [row, m] : rows) {
    row.bytes = FileSize(absl::StrCat(o.out, "/", row.file));
    QAT_ASSIGN_OR_RETURN(row.latency_ms, LatencyMs(m, test, o.batch, o.latency_seconds));
    if (o.use_ort) {
      row.ort = MeasureInOrt(script_dir, absl::StrCat(o.out, "/", row.file), o.data_dir,
                             example_shape, o.batch, o.test_limit);
    } else {
      row.ort.reason = "--no-ort";
    }
    report.rows.push_back(row);
  }
  report.total_seconds = Now() - start;
  report.artifacts.push_back("report.json");
  report.artifacts.push_back("report.md");
  QAT_RETURN_IF_ERROR(WriteReports(o.out, report));

  std::printf("\n%s\n", TableText(report, false).c_str());
  for (const std::string& check : TargetChecks(report)) std::printf("%s\n", check.c_str());
  for (const ModelRow& row : report.rows) {
    if (!row.ort.available) {
      std::printf("ONNX Runtime: n/a (%s)\n", row.ort.reason.c_str());
      break;
    }
  }
  if (!HaveGraphviz()) std::printf("Graphviz's dot is not installed: graphs as .dot only\n");
  std::printf("\nwrote %s/: %s\n(%.0f s)\n", o.out.c_str(),
              absl::StrJoin(report.artifacts, ", ").c_str(), report.total_seconds);
  return absl::OkStatus();
}

}  // namespace

int PipelineCommand(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv,
                 {"--model", "--zoo", "--data", "--out", "--epochs", "--qat-epochs", "--qat-lr",
                  "--qat-quant-params", "--qat-method", "--qat-schedule", "--threads", "--seed", "--limit",
                  "--test-limit", "--batch", "--calibration-samples", "--method", "--ort-script-dir",
                  "--latency-seconds"},
                 {"--no-ort"}, &args, &error)) {
    return Usage(error);
  }
  if (!args.positional.empty()) return Usage("pipeline takes options only");
  PipelineOptions o;
  int64_t threads = 0, seed = 0;
  if (!IntFlag(args, "--epochs", 0, &o.epochs) ||
      !IntFlag(args, "--qat-epochs", 0, &o.qat_epochs) || !IntFlag(args, "--threads", 0, &threads) ||
      !IntFlag(args, "--seed", 0, &seed) || !IntFlag(args, "--limit", 0, &o.limit) ||
      !IntFlag(args, "--test-limit", 0, &o.test_limit) ||
      !IntFlag(args, "--batch", 1, &o.batch) ||
      !IntFlag(args, "--calibration-samples", 1, &o.calibration_samples) ||
      !FloatFlag(args, "--qat-lr", 0.0, &o.qat_lr) ||
      !FloatFlag(args, "--latency-seconds", 0.0, &o.latency_seconds)) {
    return Usage("a numeric option is out of range or does not parse");
  }
  o.threads = static_cast<int>(threads);
  o.seed = static_cast<uint64_t>(seed);
  auto ptq_method = qat::ParseCalibrationMethod(args.Get("--method", "percentile"));
  if (!ptq_method.ok()) return Usage(std::string(ptq_method.status().message()));
  o.ptq_method = *ptq_method;
  auto qat_method = qat::ParseCalibrationMethod(
      args.Get("--qat-method", qat::CalibrationMethodName(o.ptq_method)));
  if (!qat_method.ok()) return Usage(std::string(qat_method.status().message()));
  o.qat_method = *qat_method;
  const std::string quant_params = args.Get("--qat-quant-params", "learn");
  if (quant_params != "fixed" && quant_params != "learn") {
    return Usage("--qat-quant-params must be fixed or learn");
  }
  o.learn_quant_params = quant_params == "learn";
  auto schedule = qat::ParseLrScheduleKind(args.Get("--qat-schedule", "cosine"));
  if (!schedule.ok()) return Usage(std::string(schedule.status().message()));
  o.qat_schedule = *schedule;
  if (args.Has("--model") && args.Has("--zoo")) return Usage("give --model or --zoo, not both");
  o.model_path = args.Get("--model", "");
  o.zoo = args.Get("--zoo", "mlp");
  if (o.zoo != "mlp" && o.zoo != "lenet5") return Usage("--zoo must be mlp or lenet5");
  o.out = args.Get("--out", "qat-pipeline");
  o.data_dir = args.Get("--data", qat::kFashionMnistDir);
  o.use_ort = !args.On("--no-ort");
  o.ort_script_dir = args.Get("--ort-script-dir", "");
  if (absl::Status s = RunPipeline(o); !s.ok()) return Fail(s);
  return 0;
}

}  // namespace qat_cli
