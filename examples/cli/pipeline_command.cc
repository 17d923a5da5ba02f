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
// The recipe is the library's (qat/pipeline.h: RunPipeline writes the
// models, calibration tables and training folders into --out); this file
// adds the flags, the progress bars, ONNX Runtime's columns and the
// pictures: report.json / report.md (the table), accuracy.svg and loss.svg
// (per-epoch curves), activation_histogram.svg (a layer's activations with
// the calibrated range marked) and graph_*.dot / .svg (the graphs).
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
#include "cli_common.h"
#include "commands.h"
#include "graph_dot.h"
#include "ort_runner.h"
#include "pipeline_report.h"
#include "progress.h"
#include "qat/dataset.h"
#include "qat/pipeline.h"
#include "qat/status_macros.h"
#include "svg_plot.h"

namespace qat_cli {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The recipe's options and what only the CLI does.
struct PipelineOptions : qat::PipelineOptions {
  bool use_ort = true;
  std::string ort_script_dir;
};

// Graphviz's layout is superlinear: a 750-node training graph (the zoo
// ResNet-8's) takes it more than ten minutes, longer than the training.
// Larger graphs stay .dot only.
constexpr int kMaxNodesToRender = 400;

// The graph as stem.dot (and stem.svg with Graphviz, up to
// kMaxNodesToRender nodes); returns the files.
absl::StatusOr<std::vector<std::string>> WriteDot(const qat::Model& model,
                                                  const std::string& out,
                                                  const std::string& stem,
                                                  const std::string& title) {
  QAT_ASSIGN_OR_RETURN(DotGraph dot, ModelToDot(model, title));
  QAT_RETURN_IF_ERROR(WriteText(absl::StrCat(out, "/", stem, ".dot"), dot.text));
  std::vector<std::string> files = {stem + ".dot"};
  if (dot.nodes > kMaxNodesToRender) {
    std::printf("%s has %d nodes (more than %d): written as .dot only, not laid out as .svg\n",
                stem.c_str(), dot.nodes, kMaxNodesToRender);
  } else if (HaveGraphviz()) {
    QAT_RETURN_IF_ERROR(RenderDotToSvg(absl::StrCat(out, "/", stem, ".dot"),
                                       absl::StrCat(out, "/", stem, ".svg")));
    files.push_back(stem + ".svg");
  }
  return files;
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
      if (p.test_accuracy >= 0) {  // -1: a distilled stage has no accuracy
        acc.x.push_back(p.epoch);
        acc.y.push_back(100 * p.test_accuracy);
      }
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
absl::Status WriteHistogram(const qat::ActivationValues& activation,
                            const std::vector<std::pair<std::string, const qat::CalibrationTable*>>& tables,
                            const PipelineOptions& o, PipelineReport* report) {
  const std::string& tensor = activation.tensor;
  const std::vector<float>& values = activation.values;
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

absl::Status RunPipeline(const PipelineOptions& o) {
  const double start = Now();
  PipelineReport report;
  report.model = o.model_path.empty() ? "zoo:" + o.zoo : o.model_path;
  report.data = o.data;
  report.settings = absl::StrFormat(
      "{\"epochs\": %d, \"qat_epochs\": %d, \"qat_lr\": %g, \"qat_schedule\": \"%s\", "
      "\"qat_quant_params\": \"%s\", \"ptq_method\": \"%s\", \"qat_method\": \"%s\", "
      "\"calibration_samples\": %d, \"batch\": %d, \"limit\": %d, \"test_limit\": %d, \"threads\": %d, \"seed\": %d}",
      o.epochs, o.qat_epochs, o.qat_lr, qat::LrScheduleKindName(o.qat_schedule),
      o.learn_quant_params ? "learn" : "fixed", qat::CalibrationMethodName(o.ptq_method),
      qat::CalibrationMethodName(o.qat_method), o.calibration_samples, o.batch, o.limit, o.test_limit,
      o.threads, o.seed);
  report.latency_batch = o.batch;

  // The recipe, with a progress bar per epoch and a line after it.
  std::unique_ptr<Progress> bar;
  qat::PipelineHooks hooks;
  hooks.on_step = [&](const qat::PipelineStep& s) {
    const qat::StepReport& r = s.step.step;
    if (!bar || r.step_in_epoch == 0) {
      bar = std::make_unique<Progress>(
          absl::StrCat(s.stage, " epoch ", s.epoch, "/", s.epochs, " (lr ",
                       absl::StrFormat("%g", s.phase_lr), ")"),
          r.steps_per_epoch);
    }
    bar->Update(r.step_in_epoch + 1, absl::StrFormat("loss %.4f", s.step.epoch_mean_loss));
  };
  hooks.on_epoch = [&](const qat::PipelineEpoch& e) {
    std::fprintf(stderr, "%s epoch %lld: train loss %.4f, test loss %.4f%s\n", e.stage.c_str(),
                 static_cast<long long>(e.epoch), e.point.train_loss, e.point.test_loss,
                 e.point.test_accuracy < 0  // a distilled stage has no accuracy
                     ? ""
                     : absl::StrFormat(", test accuracy %.2f%%", 100 * e.point.test_accuracy)
                           .c_str());
  };
  hooks.on_graph = [&](const qat::PipelineGraph& g) {
    return WriteDot(*g.model, o.out, g.name, g.title);
  };
  QAT_ASSIGN_OR_RETURN(qat::PipelineResult result, qat::RunPipeline(o, hooks));
  report.artifacts = result.artifacts;
  report.curves = result.curves;
  report.labelled = result.labelled;

  // Pictures: curves, the activation histogram.
  QAT_RETURN_IF_ERROR(WriteCurves(o.out, &report));
  std::vector<std::pair<std::string, const qat::CalibrationTable*>> tables = {
      {qat::CalibrationMethodName(o.ptq_method), &result.ptq_table}};
  if (o.qat_method != o.ptq_method) {
    tables.push_back({qat::CalibrationMethodName(o.qat_method), &result.qat_table});
  }
  QAT_RETURN_IF_ERROR(WriteHistogram(result.activation, tables, o, &report));

  // ONNX Runtime's accuracy and latency beside ours.
  const std::string script_dir = o.use_ort ? FindOrtScriptDir(o.ort_script_dir) : "";
  for (const qat::PipelineRow& r : result.rows) {
    ModelRow row(r);
    if (!result.labelled) {
      // ort_eval.js measures accuracy on labels; compare outputs with
      // tests/ort/ort_compare.js instead.
      row.ort.reason = "the data has no labels (ONNX Runtime's column measures accuracy)";
    } else if (o.use_ort) {
      row.ort = MeasureInOrt(script_dir, absl::StrCat(o.out, "/", row.file), o.data,
                             result.example_shape, o.batch, o.test_limit);
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
                  "--latency-seconds", "--low-bit-epochs", "--low-bit-lr", "--low-bit-method"},
                 {"--no-ort", "--low-bits"}, &args, &error)) {
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
      !FloatFlag(args, "--latency-seconds", 0.0, &o.latency_seconds) ||
      !IntFlag(args, "--low-bit-epochs", 0, &o.low_bit_qat_epochs) ||
      !FloatFlag(args, "--low-bit-lr", 0.0, &o.low_bit_qat_lr)) {
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
  o.low_bit_rows = args.On("--low-bits");
  auto low_bit_method = qat::ParseCalibrationMethod(
      args.Get("--low-bit-method", qat::CalibrationMethodName(o.low_bit_method)));
  if (!low_bit_method.ok()) return Usage(std::string(low_bit_method.status().message()));
  o.low_bit_method = *low_bit_method;
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
  if (o.zoo != "mlp" && o.zoo != "lenet5" && o.zoo != "resnet8" && o.zoo != "mobilenetv2") {
    return Usage("--zoo must be mlp, lenet5, resnet8 or mobilenetv2");
  }
  o.out = args.Get("--out", "qat-pipeline");
  o.data = args.Get("--data", qat::kFashionMnistDir);
  o.use_ort = !args.On("--no-ort");
  o.ort_script_dir = args.Get("--ort-script-dir", "");
  if (absl::Status s = RunPipeline(o); !s.ok()) return Fail(s);
  return 0;
}

}  // namespace qat_cli
