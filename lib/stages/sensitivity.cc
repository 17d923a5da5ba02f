#include "qat/sensitivity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "qat/status_macros.h"

namespace qat {

const char* SensitivityMetricName(SensitivityMetric metric) {
  switch (metric) {
    case SensitivityMetric::kAuto: return "auto";
    case SensitivityMetric::kAccuracy: return "accuracy";
    case SensitivityMetric::kRelativeL2: return "relative_l2";
  }
  return "auto";
}

absl::StatusOr<SensitivityMetric> ParseSensitivityMetric(const std::string& name) {
  if (name == "auto") return SensitivityMetric::kAuto;
  if (name == "accuracy") return SensitivityMetric::kAccuracy;
  if (name == "relative_l2" || name == "relative-l2") return SensitivityMetric::kRelativeL2;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown sensitivity metric '", name, "' (auto, accuracy or relative-l2)"));
}

std::string LayerPrecisionName(LayerPrecision p, const QuantizeOptions& options,
                               int high_bits) {
  switch (p) {
    case LayerPrecision::kLow:
      return absl::StrCat("w", options.weight_bits, "a", options.activation_bits);
    case LayerPrecision::kHigh: return absl::StrCat("w", high_bits, "a", high_bits);
    case LayerPrecision::kFloat: return "fp32";
  }
  return "fp32";
}

namespace {

using Assignment = std::map<std::string, LayerPrecision>;

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// JSON string literal (node names may hold quotes or backslashes).
std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string Number(double v) { return std::isfinite(v) ? absl::StrFormat("%.6g", v) : "null"; }

std::string MeasurementJson(const SensitivityMeasurement& m) {
  return absl::StrCat("{\"metric\": ", Number(m.metric), ", \"loss\": ", Number(m.loss),
                      ", \"drop\": ", Number(m.drop), "}");
}

// The calibrate stage's options for the quantize options being studied, at
// the given widths: the same node selection, activation type and symmetry.
CalibrateOptions CalibrationFor(const SensitivityOptions& o, int weight_bits,
                                int activation_bits) {
  CalibrateOptions c = o.calibrate;
  const QuantizeOptions& q = o.quantize;
  c.op_types = q.op_types;
  c.include_nodes = q.include_nodes;
  c.exclude_nodes = q.exclude_nodes;
  c.activation_type = q.activation_type;
  c.symmetric_activations = q.symmetric_activations;
  c.activation_range = q.activation_range;
  c.activation_bits = activation_bits;
  c.weight_bits = weight_bits;
  c.per_channel_weights = q.per_channel;
  return c;
}

class Analysis {
 public:
  Analysis(const Model& model, const Dataset& calibration, const Dataset& evaluation,
           const SensitivityOptions& options)
      : model_(model), calibration_(calibration), evaluation_(evaluation), o_(options) {}

  absl::StatusOr<SensitivityReport> Run();

 private:
  bool has_high_level() const {
    return o_.quantize.weight_bits != o_.high_bits || o_.quantize.activation_bits != o_.high_bits;
  }
  LayerPrecision Up(LayerPrecision p) const {
    if (p == LayerPrecision::kLow && has_high_level()) return LayerPrecision::kHigh;
    return LayerPrecision::kFloat;
  }
  LayerPrecision Down(LayerPrecision p) const {
    if (p == LayerPrecision::kFloat && has_high_level()) return LayerPrecision::kHigh;
    return LayerPrecision::kLow;
  }
  int WeightBits(LayerPrecision p) const {
    return p == LayerPrecision::kHigh ? o_.high_bits : o_.quantize.weight_bits;
  }
  int ActivationBits(LayerPrecision p) const {
    return p == LayerPrecision::kHigh ? o_.high_bits : o_.quantize.activation_bits;
  }

  absl::StatusOr<CalibrationTable> TableFor(const Assignment& assignment);
  absl::StatusOr<SensitivityMeasurement> Evaluate(const Model& m);
  absl::StatusOr<SensitivityMeasurement> Measure(const Assignment& assignment,
                                                 const std::string& what);
  absl::Status Propose(SensitivityReport* report);

  const Model& model_;
  const Dataset& calibration_;
  const Dataset& evaluation_;
  const SensitivityOptions& o_;
  bool accuracy_ = true;
  std::string output_;
  std::vector<QuantizableNode> nodes_;
  CalibrationTable low_table_;
  std::optional<CalibrationTable> high_table_;  // calibrated when first needed
  SensitivityMeasurement fp32_;
  std::vector<std::string> warnings_;
  int done_ = 0, planned_ = 0;
};

// The low table, with the high-bit calibration's entries for the tensors
// that the assignment puts at the high width, and an override per layer.
absl::StatusOr<CalibrationTable> Analysis::TableFor(const Assignment& assignment) {
  CalibrationTable table = low_table_;
  std::map<std::string, int> width;  // tensor -> the widest quantized reader/writer
  bool any_high = false;
  for (const QuantizableNode& n : nodes_) {
    const LayerPrecision p = assignment.at(n.name);
    NodeQuantOverride o;
    if (p == LayerPrecision::kFloat) {
      o.keep_float = true;
    } else {
      o.weight_bits = WeightBits(p);
      o.activation_bits = ActivationBits(p);
      for (const std::string& t : n.activations) {
        width[t] = std::max(width[t], o.activation_bits);
      }
      for (const std::string& t : n.weights) width[t] = std::max(width[t], o.weight_bits);
      any_high |= p == LayerPrecision::kHigh;
    }
    QAT_RETURN_IF_ERROR(table.SetNodeOverride(n.name, o));
  }
  if (!any_high) return table;
  if (!high_table_) {
    QAT_ASSIGN_OR_RETURN(high_table_,
                         Calibrate(model_, calibration_,
                                   CalibrationFor(o_, o_.high_bits, o_.high_bits)));
  }
  for (const auto& [tensor, bits] : width) {
    const CalibrationEntry* low = table.Find(tensor);
    const CalibrationEntry* high = high_table_->Find(tensor);
    if (high == nullptr || bits != o_.high_bits || (low != nullptr && low->bits() == bits)) {
      continue;
    }
    QAT_RETURN_IF_ERROR(table.Set(tensor, *high));
  }
  return table;
}

absl::StatusOr<SensitivityMeasurement> Analysis::Evaluate(const Model& m) {
  SensitivityMeasurement r;
  if (accuracy_) {
    QAT_ASSIGN_OR_RETURN(EvalReport e, qat::Evaluate(m, evaluation_, o_.evaluate));
    r.metric = 100.0 * e.accuracy;
    r.loss = e.mean_loss;
    r.drop = fp32_.metric - r.metric;
    return r;
  }
  QAT_ASSIGN_OR_RETURN(ModelMetrics metrics,
                       EvaluateOutputs(m, evaluation_, &model_, o_.evaluate));
  for (const OutputMetrics& out : metrics.outputs) {
    if (out.name != output_) continue;
    r.metric = r.loss = r.drop = out.relative_l2;
    return r;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("the quantized model has no output '", output_, "' to compare"));
}

absl::StatusOr<SensitivityMeasurement> Analysis::Measure(const Assignment& assignment,
                                                         const std::string& what) {
  if (o_.progress) o_.progress(done_, std::max(planned_, done_ + 1), what);
  auto measured = [&]() -> absl::StatusOr<SensitivityMeasurement> {
    QAT_ASSIGN_OR_RETURN(CalibrationTable table, TableFor(assignment));
    std::vector<std::string> warnings;
    QAT_ASSIGN_OR_RETURN(Model quantized,
                         QuantizeModel(model_, table, o_.quantize, &warnings));
    for (const std::string& w : warnings) {
      if (std::find(warnings_.begin(), warnings_.end(), w) == warnings_.end()) {
        warnings_.push_back(w);
      }
    }
    return Evaluate(quantized);
  }();
  ++done_;
  if (!measured.ok()) {
    return absl::Status(measured.status().code(),
                        absl::StrCat("sensitivity, measuring ", what, ": ",
                                     measured.status().message()));
  }
  return measured;
}

absl::StatusOr<SensitivityReport> Analysis::Run() {
  const auto start = std::chrono::steady_clock::now();
  if (o_.target_drop && !(*o_.target_drop >= 0 && std::isfinite(*o_.target_drop))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the target drop must be a finite number >= 0, got ", *o_.target_drop));
  }
  QAT_RETURN_IF_ERROR(ValidateQuantBits(o_.high_bits, "sensitivity high bits"));
  if (o_.high_bits < o_.quantize.weight_bits || o_.high_bits < o_.quantize.activation_bits) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the high precision (", o_.high_bits, " bits) is below the studied W",
        o_.quantize.weight_bits, "A", o_.quantize.activation_bits));
  }
  accuracy_ = o_.metric == SensitivityMetric::kAccuracy ||
              (o_.metric == SensitivityMetric::kAuto && evaluation_.has_labels());
  if (accuracy_ && !evaluation_.has_labels()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the accuracy metric needs labels, and '", evaluation_.source(),
        "' has none; use the relative-l2 metric"));
  }
  const std::vector<ValueInfo> outputs = model_.outputs();
  if (outputs.empty()) return absl::InvalidArgumentError("the model has no output");
  output_ = o_.evaluate.output.empty() ? outputs[0].name : o_.evaluate.output;

  // The layers: what quantize quantizes, less what the options fix.
  QAT_ASSIGN_OR_RETURN(std::vector<QuantizableNode> all,
                       QuantizableNodes(model_, o_.quantize));
  for (QuantizableNode& n : all) {
    if (n.name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a ", n.op_type, " node reading '", n.activations.empty() ? "" : n.activations[0],
          "' has no name; sensitivity names layers by node name (node overrides)"));
    }
    if (o_.quantize.node_overrides.count(n.name) == 0) nodes_.push_back(std::move(n));
  }
  if (nodes_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", model_.source(), "' has no node to analyse (op types ",
        absl::StrJoin(o_.quantize.op_types, ","), ")"));
  }
  if (o_.table) {
    low_table_ = *o_.table;
  } else {
    QAT_ASSIGN_OR_RETURN(low_table_,
                         Calibrate(model_, calibration_,
                                   CalibrationFor(o_, o_.quantize.weight_bits,
                                                  o_.quantize.activation_bits)));
  }

  SensitivityReport report;
  report.metric = accuracy_ ? "accuracy" : "relative_l2";
  report.output = output_;
  report.weight_bits = o_.quantize.weight_bits;
  report.activation_bits = o_.quantize.activation_bits;
  report.high_bits = o_.high_bits;
  const int per_layer = o_.measure_all_but ? 2 : 1;
  planned_ = 1 + per_layer * static_cast<int>(nodes_.size());
  if (accuracy_) {
    QAT_ASSIGN_OR_RETURN(EvalReport e, qat::Evaluate(model_, evaluation_, o_.evaluate));
    fp32_.metric = 100.0 * e.accuracy;
    fp32_.loss = e.mean_loss;
    report.examples = e.examples;
  } else {
    report.examples = evaluation_.size();
  }
  report.fp32 = fp32_;

  Assignment assignment;
  for (const QuantizableNode& n : nodes_) assignment[n.name] = LayerPrecision::kLow;
  QAT_ASSIGN_OR_RETURN(report.all_quantized, Measure(assignment, "every layer quantized"));
  for (const QuantizableNode& n : nodes_) {
    LayerSensitivity layer;
    layer.node = n.name;
    layer.op_type = n.op_type;
    Assignment alone;
    for (const QuantizableNode& m : nodes_) alone[m.name] = LayerPrecision::kFloat;
    alone[n.name] = LayerPrecision::kLow;
    QAT_ASSIGN_OR_RETURN(layer.alone, Measure(alone, absl::StrCat(n.name, " alone")));
    if (o_.measure_all_but) {
      Assignment all_but = assignment;
      all_but[n.name] = LayerPrecision::kFloat;
      QAT_ASSIGN_OR_RETURN(layer.all_but, Measure(all_but, absl::StrCat("all but ", n.name)));
      layer.has_all_but = true;
      layer.recovery = report.all_quantized.drop - layer.all_but.drop;
    }
    report.layers.push_back(std::move(layer));
  }
  // Most sensitive first; the graph order breaks exact ties (stable sort).
  std::stable_sort(report.layers.begin(), report.layers.end(),
                   [](const LayerSensitivity& a, const LayerSensitivity& b) {
                     if (a.recovery != b.recovery) return a.recovery > b.recovery;
                     if (a.alone.drop != b.alone.drop) return a.alone.drop > b.alone.drop;
                     return a.alone.loss > b.alone.loss;
                   });
  if (o_.target_drop) QAT_RETURN_IF_ERROR(Propose(&report));
  report.warnings = warnings_;
  report.seconds = Seconds(start);
  return report;
}

// The greedy search of the header comment, every step measured.
absl::Status Analysis::Propose(SensitivityReport* report) {
  const int first_measurement = done_;
  Assignment assignment;
  for (const QuantizableNode& n : nodes_) assignment[n.name] = LayerPrecision::kLow;
  SensitivityMeasurement current = report->all_quantized;
  const double target = *o_.target_drop;
  // Promotions: the layers in sensitivity order, once per level above low.
  std::vector<std::string> order;
  for (int pass = 0; pass < (has_high_level() ? 2 : 1); ++pass) {
    for (const LayerSensitivity& l : report->layers) order.push_back(l.node);
  }
  std::vector<std::string> promoted;  // in promotion order, once each
  for (size_t k = 0; k < order.size() && current.drop > target; ++k) {
    LayerPrecision& p = assignment[order[k]];
    p = Up(p);
    if (std::find(promoted.begin(), promoted.end(), order[k]) == promoted.end()) {
      promoted.push_back(order[k]);
    }
    ++planned_;
    QAT_ASSIGN_OR_RETURN(current,
                         Measure(assignment, absl::StrCat("proposal: ", order[k], " at ",
                                                          LayerPrecisionName(p, o_.quantize,
                                                                             o_.high_bits))));
  }
  // Undo what the target does not need, the last promoted first.
  if (current.drop <= target) {
    for (auto it = promoted.rbegin(); it != promoted.rend(); ++it) {
      while (assignment[*it] != LayerPrecision::kLow) {
        Assignment lower = assignment;
        lower[*it] = Down(assignment[*it]);
        ++planned_;
        QAT_ASSIGN_OR_RETURN(
            SensitivityMeasurement m,
            Measure(lower, absl::StrCat("proposal: ", *it, " back at ",
                                        LayerPrecisionName(lower[*it], o_.quantize,
                                                           o_.high_bits))));
        if (m.drop > target) break;
        assignment = lower;
        current = m;
      }
    }
  }
  MixedPrecisionProposal proposal;
  proposal.target_drop = target;
  proposal.measured = current;
  proposal.meets_target = current.drop <= target;
  proposal.measurements = done_ - first_measurement;
  for (const LayerSensitivity& l : report->layers) {
    const LayerPrecision p = assignment[l.node];
    proposal.layers.push_back({l.node, p, LayerPrecisionName(p, o_.quantize, o_.high_bits)});
    proposal.high_precision_layers += p != LayerPrecision::kLow;
  }
  QAT_ASSIGN_OR_RETURN(proposal.table, TableFor(assignment));
  report->proposal = std::move(proposal);
  return absl::OkStatus();
}

}  // namespace

std::string SensitivityReport::ToJson() const {
  std::string json = absl::StrCat(
      "{\n  \"metric\": ", Quote(metric), ",\n  \"output\": ", Quote(output),
      ",\n  \"examples\": ", examples, ",\n  \"weight_bits\": ", weight_bits,
      ",\n  \"activation_bits\": ", activation_bits, ",\n  \"high_bits\": ", high_bits,
      ",\n  \"fp32\": ", MeasurementJson(fp32),
      ",\n  \"all_quantized\": ", MeasurementJson(all_quantized), ",\n  \"layers\": [");
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerSensitivity& l = layers[i];
    absl::StrAppend(&json, i ? "," : "", "\n    {\"node\": ", Quote(l.node),
                    ", \"op_type\": ", Quote(l.op_type),
                    ", \"alone\": ", MeasurementJson(l.alone));
    if (l.has_all_but) {
      absl::StrAppend(&json, ", \"all_but\": ", MeasurementJson(l.all_but),
                      ", \"recovery\": ", Number(l.recovery));
    }
    absl::StrAppend(&json, "}");
  }
  absl::StrAppend(&json, "\n  ]");
  if (proposal) {
    const MixedPrecisionProposal& p = *proposal;
    absl::StrAppend(&json, ",\n  \"proposal\": {\"target_drop\": ", Number(p.target_drop),
                    ", \"meets_target\": ", p.meets_target ? "true" : "false",
                    ", \"high_precision_layers\": ", p.high_precision_layers,
                    ", \"measurements\": ", p.measurements,
                    ", \"measured\": ", MeasurementJson(p.measured), ",\n    \"layers\": {");
    for (size_t i = 0; i < p.layers.size(); ++i) {
      absl::StrAppend(&json, i ? ", " : "", Quote(p.layers[i].node), ": ",
                      Quote(p.layers[i].name));
    }
    absl::StrAppend(&json, "}}");
  }
  std::vector<std::string> quoted;
  for (const std::string& w : warnings) quoted.push_back(Quote(w));
  absl::StrAppend(&json, ",\n  \"warnings\": [", absl::StrJoin(quoted, ", "),
                  "],\n  \"seconds\": ", Number(seconds), "\n}\n");
  return json;
}

absl::StatusOr<SensitivityReport> AnalyzeSensitivity(const Model& model,
                                                     const Dataset& calibration,
                                                     const Dataset& evaluation,
                                                     const SensitivityOptions& options) {
  return Analysis(model, calibration, evaluation, options).Run();
}

}  // namespace qat
