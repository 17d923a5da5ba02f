// qat sensitivity MODEL.onnx --data DATA [--calibration-data DATA]
//     [--split train|test] [--limit N] [--metric auto|accuracy|relative-l2]
//     [--output NAME] [--no-all-but] [--target-drop X] [--high-bits N]
//     [--json REPORT.json] [--svg CHART.svg] [-o PROPOSAL.json]
//     [calibrate's --method/--samples/... and quantize's flags]
//
// Per-layer quantization sensitivity (qat/sensitivity.h, AnalyzeSensitivity):
// prints the layers most sensitive first, writes the report as JSON and a
// bar chart as SVG, and with --target-drop writes the proposed
// mixed-precision assignment as a calibration table with node_overrides
// that `qat quantize --table PROPOSAL.json` (with the same quantize flags)
// takes.  DATA is the validation data the choice is made on (by default the
// training split: never choose on the test set).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli_common.h"
#include "commands.h"
#include "progress.h"
#include "qat/data_spec.h"
#include "qat/file_io.h"
#include "qat/sensitivity.h"
#include "quantization_flags.h"
#include "svg_plot.h"

namespace qat_cli {
namespace {

void PrintTable(const qat::SensitivityReport& r, const std::string& model) {
  const bool accuracy = r.metric == "accuracy";
  const char* unit = accuracy ? " points" : "";
  std::printf("sensitivity of %zu layers of %s at W%dA%d (%s on %lld examples)\n",
              r.layers.size(), model.c_str(), r.weight_bits, r.activation_bits,
              accuracy ? "accuracy" : absl::StrCat("relative L2 of '", r.output, "'").c_str(),
              static_cast<long long>(r.examples));
  if (accuracy) {
    std::printf("fp32 %.2f%%, every layer quantized %.2f%% (drop %.2f points)\n", r.fp32.metric,
                r.all_quantized.metric, r.all_quantized.drop);
  } else {
    std::printf("every layer quantized: relative L2 %.4g\n", r.all_quantized.drop);
  }
  size_t width = 4;
  for (const auto& l : r.layers) width = std::max(width, l.node.size());
  std::printf("%-4s  %-*s  %-8s  %12s  %12s  %10s\n", "rank", static_cast<int>(width), "node",
              "op", "alone drop", "all-but drop", "recovery");
  for (size_t i = 0; i < r.layers.size(); ++i) {
    const auto& l = r.layers[i];
    std::printf("%-4zu  %-*s  %-8s  %12.4g  %12s  %10s\n", i + 1, static_cast<int>(width),
                l.node.c_str(), l.op_type.c_str(), l.alone.drop,
                l.has_all_but ? absl::StrFormat("%.4g", l.all_but.drop).c_str() : "-",
                l.has_all_but ? absl::StrFormat("%.4g", l.recovery).c_str() : "-");
  }
  std::printf("(drops in%s against fp32; recovery: what keeping the layer fp32 buys when every "
              "other layer is quantized)\n",
              accuracy ? " accuracy points" : " relative L2");
  if (!r.proposal) return;
  const auto& p = *r.proposal;
  std::printf("proposal for a drop of at most %g%s: %d of %zu layers above W%dA%d; measured drop "
              "%.4g (%s), %d quantize+evaluate runs\n",
              p.target_drop, unit, p.high_precision_layers, p.layers.size(), r.weight_bits,
              r.activation_bits, p.measured.drop,
              p.meets_target ? "meets the target" : "DOES NOT meet the target", p.measurements);
  for (const auto& l : p.layers) {
    std::printf("  %-*s  %s\n", static_cast<int>(width), l.node.c_str(), l.name.c_str());
  }
}

std::string Chart(const qat::SensitivityReport& r) {
  const bool accuracy = r.metric == "accuracy";
  PlotSpec plot(absl::StrFormat("per-layer sensitivity at W%dA%d, most sensitive first",
                                r.weight_bits, r.activation_bits),
                "", accuracy ? "accuracy drop (points)" : "relative L2 vs fp32");
  plot.y_from_zero = true;
  PlotSeries alone("alone: drop");
  PlotSeries recovery("all but it: recovery");
  alone.bars = recovery.bars = true;
  alone.bar_width = recovery.bar_width = 0.4;
  for (size_t i = 0; i < r.layers.size(); ++i) {
    const auto& l = r.layers[i];
    const double x = static_cast<double>(i);
    alone.x.push_back(x + 0.1);
    alone.y.push_back(l.alone.drop);
    if (l.has_all_but) {
      recovery.x.push_back(x + 0.5);
      recovery.y.push_back(l.recovery);
    }
    plot.x_tick_labels.push_back({x + 0.5, l.node});
  }
  plot.series = {alone, recovery};
  return RenderSvgPlot(plot);
}

}  // namespace

int SensitivityCommand(int argc, char** argv) {
  Args args;
  std::string error;
  std::vector<std::string> valued = {"--data",   "--calibration-data", "--split",
                                     "--limit",  "--metric",           "--output",
                                     "--target-drop", "--high-bits",   "--json",
                                     "--svg",    "--out"};
  valued.insert(valued.end(), kQuantizeFlags.begin(), kQuantizeFlags.end());
  valued.insert(valued.end(), kCalibrateMethodFlags.begin(), kCalibrateMethodFlags.end());
  std::vector<std::string> switches = kQuantizeSwitches;
  switches.push_back("--no-all-but");
  if (!ParseArgs(argc, argv, valued, switches, &args, &error)) return Usage(error);
  if (args.positional.size() != 1) return Usage("sensitivity needs one model");
  if (!args.Has("--data")) {
    return Usage("sensitivity needs --data DATA (validation data: never the test set)");
  }
  qat::SensitivityOptions options;
  if (!QuantizeFlags(args, &options.quantize, &error) ||
      !CalibrateMethodFlags(args, &options.calibrate, &error)) {
    return Usage(error);
  }
  auto metric = qat::ParseSensitivityMetric(args.Get("--metric", "auto"));
  if (!metric.ok()) return Usage(std::string(metric.status().message()));
  options.metric = *metric;
  options.evaluate.output = args.Get("--output", "");
  options.evaluate.batch_size = options.calibrate.batch_size;
  options.evaluate.num_threads = options.calibrate.num_threads;
  options.measure_all_but = !args.On("--no-all-but");
  int64_t limit = 0, high_bits = 8;
  if (!IntFlag(args, "--limit", 0, &limit) || !IntFlag(args, "--high-bits", 2, &high_bits) ||
      high_bits > qat::kMaxQuantBits) {
    return Usage("--limit must be >= 0 and --high-bits from 2 to 8");
  }
  options.high_bits = static_cast<int>(high_bits);
  if (args.Has("--target-drop")) {
    double target = 0;
    if (!FloatFlag(args, "--target-drop", 0.0, &target)) {
      return Usage("--target-drop must be a number >= 0 (accuracy points, or relative L2)");
    }
    options.target_drop = target;
  } else if (args.Has("--out")) {
    return Usage("-o PROPOSAL.json needs --target-drop X");
  }
  qat::DataSpecOptions spec;
  spec.split = args.Get("--split", "train");
  if (spec.split != "train" && spec.split != "test") return Usage("--split must be train or test");
  if (spec.split == "test") {
    std::fprintf(stderr, "qat: warning: choosing precisions on the test split; keep the test "
                         "set for the final numbers and choose on validation data\n");
  }

  const std::string model_path = args.positional[0];
  auto model = qat::Model::Load(model_path);
  if (!model.ok()) return Fail(model.status());
  spec.limit = limit;
  auto evaluation = qat::LoadDataSpec(args.Get("--data", ""), *model, spec);
  if (!evaluation.ok()) return Fail(evaluation.status());
  spec.limit = options.calibrate.max_samples;
  auto calibration = qat::LoadDataSpec(
      args.Get("--calibration-data", args.Get("--data", "")), *model, spec);
  if (!calibration.ok()) return Fail(calibration.status());

  std::unique_ptr<Progress> bar;
  int last_total = 0;
  options.progress = [&](int done, int total, const std::string& what) {
    if (!bar || total != last_total) bar = std::make_unique<Progress>("sensitivity", total, "runs");
    last_total = total;
    bar->Update(done, what);
  };
  auto report = qat::AnalyzeSensitivity(*model, *calibration, *evaluation, options);
  if (!report.ok()) return Fail(report.status());
  if (bar) bar->Update(last_total, "done");
  for (const std::string& w : report->warnings) {
    std::fprintf(stderr, "qat: warning: %s\n", w.c_str());
  }
  PrintTable(*report, model_path);

  const std::string json = args.Get("--json", "sensitivity.json");
  const std::string svg = args.Get("--svg", "sensitivity.svg");
  if (absl::Status s = qat::WriteFileAtomically(json, report->ToJson()); !s.ok()) return Fail(s);
  if (absl::Status s = qat::WriteFileAtomically(svg, Chart(*report)); !s.ok()) return Fail(s);
  std::printf("wrote %s and %s\n", json.c_str(), svg.c_str());
  if (report->proposal) {
    const std::string out = args.Get("--out", "mixed_precision.json");
    if (absl::Status s = report->proposal->table.Save(out); !s.ok()) return Fail(s);
    std::printf("wrote %s: qat quantize %s --table %s (with the same quantize flags)\n",
                out.c_str(), model_path.c_str(), out.c_str());
  }
  return 0;
}

}  // namespace qat_cli
