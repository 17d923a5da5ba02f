#include "pipeline_report.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "qat/file_io.h"

namespace qat_cli {
namespace {

const ModelRow* FindRow(const PipelineReport& report, const std::string& name) {
  for (const ModelRow& row : report.rows) {
    if (row.name == name) return &row;
  }
  return nullptr;
}

// The accuracy the targets are judged on: ONNX Runtime's when it ran.
double Judged(const ModelRow& row) { return row.ort.available ? row.ort.accuracy : row.accuracy; }

std::string Pct(double v) { return absl::StrFormat("%.2f%%", 100 * v); }

std::string Size(size_t bytes) {
  return bytes >= (1u << 20) ? absl::StrFormat("%.2f MB", bytes / 1048576.0)
                             : absl::StrFormat("%.0f KB", bytes / 1024.0);
}

}  // namespace

std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  return qat::WriteFileAtomically(path, text);
}

std::vector<std::string> TargetChecks(const PipelineReport& report) {
  std::vector<std::string> checks;
  const ModelRow* fp32 = FindRow(report, "fp32");
  if (fp32 == nullptr || !report.labelled) return checks;  // the targets are accuracies
  const char* by = fp32->ort.available ? "ONNX Runtime" : "libqat executor (no ONNX Runtime)";
  const double base = Judged(*fp32);
  checks.push_back(absl::StrFormat("fp32 %s >= 88.50%%: %s (%s)", Pct(base),
                                   base >= 0.885 ? "met" : "MISSED", by));
  for (const auto& [name, margin] :
       std::vector<std::pair<std::string, double>>{{"qat int8", 0.002}, {"qat w4a8", 0.005},
                                                   // issue 15's, with --low-bits
                                                   {"qat w4a4", 0.01}, {"qat w2a8", 0.02},
                                                   {"qat w3a3", 0.02}}) {
    const ModelRow* row = FindRow(report, name);
    if (row == nullptr) continue;
    const double v = Judged(*row);
    checks.push_back(absl::StrFormat("%s %s >= fp32 - %.1f points (%s): %s, %+.2f points (%s)",
                                     name, Pct(v), 100 * margin, Pct(base - margin),
                                     v >= base - margin - 1e-12 ? "met" : "MISSED",
                                     100 * (v - base), row->ort.available ? "ONNX Runtime" : by));
  }
  return checks;
}

std::string TableText(const PipelineReport& report, bool markdown) {
  std::vector<std::string> header = {"model", "accuracy (libqat)", "accuracy (ORT)",
                                     "file size", "latency/batch (libqat)",
                                     "latency/batch (ORT)", "file"};
  if (!report.labelled) {
    // Against fp32, the first output's (report.json has every output's).
    header = {"model", "relative L2", "SQNR", "cosine", "argmax agreement",
              "file size", "latency/batch (libqat)", "file"};
  }
  std::vector<std::vector<std::string>> cells;
  for (const ModelRow& r : report.rows) {
    if (!report.labelled) {
      const qat::OutputMetrics m = r.metrics.empty() ? qat::OutputMetrics() : r.metrics[0];
      cells.push_back({r.name, absl::StrFormat("%.4g", m.relative_l2),
                       absl::StrFormat("%.2f dB", m.sqnr_db), absl::StrFormat("%.5f", m.cosine),
                       m.argmax_agreement >= 0 ? Pct(m.argmax_agreement) : "n/a", Size(r.bytes),
                       absl::StrFormat("%.3f ms", r.latency_ms), r.file});
      continue;
    }
    cells.push_back({r.name, Pct(r.accuracy), r.ort.available ? Pct(r.ort.accuracy) : "n/a",
                     Size(r.bytes), absl::StrFormat("%.3f ms", r.latency_ms),
                     r.ort.available ? absl::StrFormat("%.3f ms", r.ort.latency_ms) : "n/a",
                     r.file});
  }
  std::string text;
  if (markdown) {
    text = absl::StrCat("| ", absl::StrJoin(header, " | "), " |\n");
    for (size_t i = 0; i < header.size(); ++i) text += i ? "---|" : "|---|";
    text += "\n";
    for (const auto& row : cells) absl::StrAppend(&text, "| ", absl::StrJoin(row, " | "), " |\n");
    return text;
  }
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i) {
    width[i] = header[i].size();
    for (const auto& row : cells) width[i] = std::max(width[i], row[i].size());
  }
  auto line = [&](const std::vector<std::string>& row) {
    std::string s;
    for (size_t i = 0; i < row.size(); ++i) {
      absl::StrAppend(&s, i ? "  " : "", row[i], std::string(width[i] - row[i].size(), ' '));
    }
    return s + "\n";
  };
  text = line(header);
  for (const auto& row : cells) text += line(row);
  return text;
}

absl::Status WriteReports(const std::string& dir, const PipelineReport& report) {
  // report.json
  std::string json = absl::StrCat("{\n  \"model\": ", JsonString(report.model),
                                  ",\n  \"data\": ", JsonString(report.data),
                                  ",\n  \"settings\": ", report.settings,
                                  ",\n  \"latency_batch\": ", report.latency_batch,
                                  ",\n  \"rows\": [");
  for (size_t i = 0; i < report.rows.size(); ++i) {
    const ModelRow& r = report.rows[i];
    absl::StrAppend(&json, i ? "," : "", "\n    {\"model\": ", JsonString(r.name),
                    ", \"file\": ", JsonString(r.file), ", \"recipe\": ", JsonString(r.recipe),
                    ", \"accuracy\": ",
                    report.labelled ? absl::StrFormat("%.4f", r.accuracy) : "null");
    if (!report.labelled) {
      // Against fp32 on the test data, per output (qat::OutputMetrics).
      json += ", \"metrics\": {";
      for (size_t k = 0; k < r.metrics.size(); ++k) {
        const qat::OutputMetrics& m = r.metrics[k];
        absl::StrAppend(&json, k ? ", " : "", JsonString(m.name),
                        absl::StrFormat(": {\"relative_l2\": %.6g, \"sqnr_db\": %.4f, "
                                        "\"max_abs_error\": %.6g, \"cosine\": %.6f",
                                        m.relative_l2, m.sqnr_db, m.max_abs_error, m.cosine));
        if (m.argmax_agreement >= 0) {
          absl::StrAppend(&json, absl::StrFormat(", \"argmax_agreement\": %.4f",
                                                 m.argmax_agreement));
        }
        json += "}";
      }
      json += "}";
    }
    if (r.start_accuracy >= 0) {
      absl::StrAppend(&json, ", \"accuracy_before_qat\": ",
                      absl::StrFormat("%.4f", r.start_accuracy));
    }
    absl::StrAppend(&json, ", \"bytes\": ", r.bytes, ", \"latency_ms\": ",
                    absl::StrFormat("%.4f", r.latency_ms), ", \"ort_accuracy\": ",
                    r.ort.available ? absl::StrFormat("%.4f", r.ort.accuracy) : "null",
                    ", \"ort_latency_ms\": ",
                    r.ort.available ? absl::StrFormat("%.4f", r.ort.latency_ms) : "null");
    if (!r.ort.available) absl::StrAppend(&json, ", \"ort_note\": ", JsonString(r.ort.reason));
    absl::StrAppend(&json, ", \"seconds\": ", absl::StrFormat("%.1f", r.seconds), "}");
  }
  json += "\n  ],\n  \"curves\": {";
  for (size_t i = 0; i < report.curves.size(); ++i) {
    const StageCurve& c = report.curves[i];
    absl::StrAppend(&json, i ? "," : "", "\n    ", JsonString(c.name), ": [");
    for (size_t k = 0; k < c.points.size(); ++k) {
      const EpochPoint& p = c.points[k];
      absl::StrAppend(&json, k ? ", " : "", "{\"epoch\": ", p.epoch, ", \"train_loss\": ",
                      p.train_loss >= 0 ? absl::StrFormat("%.5f", p.train_loss) : "null",
                      ", \"test_loss\": ", absl::StrFormat("%.5f", p.test_loss),
                      ", \"test_accuracy\": ",
                      p.test_accuracy >= 0 ? absl::StrFormat("%.4f", p.test_accuracy) : "null",
                      "}");
    }
    json += "]";
  }
  json += "\n  },\n  \"targets\": [";
  const std::vector<std::string> checks = TargetChecks(report);
  for (size_t i = 0; i < checks.size(); ++i) {
    absl::StrAppend(&json, i ? ", " : "", JsonString(checks[i]));
  }
  absl::StrAppend(&json, "],\n  \"histogram_tensor\": ", JsonString(report.histogram_tensor),
                  ",\n  \"artifacts\": [");
  for (size_t i = 0; i < report.artifacts.size(); ++i) {
    absl::StrAppend(&json, i ? ", " : "", JsonString(report.artifacts[i]));
  }
  absl::StrAppend(&json, "],\n  \"total_seconds\": ", absl::StrFormat("%.1f", report.total_seconds),
                  "\n}\n");
  if (absl::Status s = WriteText(dir + "/report.json", json); !s.ok()) return s;

  // report.md
  std::string md = absl::StrCat("# qat pipeline: ", report.model, "\n\nData: `", report.data,
                                "`. Latency: median wall time of one batch of ",
                                report.latency_batch,
                                " test images, one thread, in libqat's executor and in ONNX "
                                "Runtime (default graph optimizations).\n\n",
                                report.labelled ? "" :
                                "The data has no labels: QAT distilled from the fp32 model, "
                                "and each row is measured against fp32's outputs on the test "
                                "data (first output; report.json has every output's).\n\n",
                                TableText(report, true), "\n## Targets\n\n");
  if (!report.labelled) md += "- none: the accuracy targets need labels\n";
  for (const std::string& c : checks) absl::StrAppend(&md, "- ", c, "\n");
  for (const ModelRow& r : report.rows) {
    if (!r.ort.available) {
      absl::StrAppend(&md, "\nONNX Runtime: n/a (", r.ort.reason, ")\n");
      break;
    }
  }
  md += "\n## How each model was made\n\n";
  for (const ModelRow& r : report.rows) {
    absl::StrAppend(&md, "- **", r.name, "**: ", r.recipe);
    if (r.start_accuracy >= 0) {
      absl::StrAppend(&md, " (", Pct(r.start_accuracy), " before QAT)");
    }
    md += "\n";
  }
  md += "\n## Pictures\n\n- accuracy.svg, loss.svg: per-epoch curves\n";
  absl::StrAppend(&md, "- activation_histogram.svg: `", report.histogram_tensor,
                  "` on the calibration samples, calibrated ranges marked\n");
  md += "- graph_*.dot (and .svg with Graphviz): the fp32, QDQ, FakeQuant training and exported "
        "graphs\n";
  absl::StrAppend(&md, "\nTotal time: ", absl::StrFormat("%.0f", report.total_seconds), " s\n");
  return WriteText(dir + "/report.md", md);
}

}  // namespace qat_cli
