// The pipeline's report: the recipe's results (qat/pipeline.h) with ONNX
// Runtime's columns, one row per model, printed as a table and written
// as report.json and report.md, with the accuracy targets checked.
#ifndef QAT_EXAMPLES_CLI_PIPELINE_REPORT_H_
#define QAT_EXAMPLES_CLI_PIPELINE_REPORT_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "ort_runner.h"
#include "qat/pipeline.h"

namespace qat_cli {

// A row of the recipe (qat/pipeline.h) with ONNX Runtime's measurement.
struct ModelRow : qat::PipelineRow {
  ModelRow() = default;
  explicit ModelRow(const qat::PipelineRow& row) : qat::PipelineRow(row) {}
  OrtMeasurement ort;
};

using EpochPoint = qat::EpochPoint;
using StageCurve = qat::StageCurve;

struct PipelineReport {
  std::string model;  // "zoo:mlp", "zoo:lenet5" or the file
  std::string data;
  int64_t latency_batch = 64;
  std::string settings;  // the flags that shaped the run, as JSON object text
  // false: the data had no labels; rows are measured against fp32
  // (PipelineRow::metrics) and the accuracy targets do not apply.
  bool labelled = true;
  std::vector<ModelRow> rows;
  std::vector<StageCurve> curves;
  std::vector<std::string> artifacts;
  std::string histogram_tensor;
  double total_seconds = 0.0;
};

// "fp32 >= 88.5%; qat int8 >= fp32 - 0.2; qat w4a8 >= fp32 - 0.5", each
// measured by ONNX Runtime when it ran, else by our executor.
std::vector<std::string> TargetChecks(const PipelineReport& report);

// The table as printed on stdout and in report.md.
std::string TableText(const PipelineReport& report, bool markdown);

// Writes DIR/report.json and DIR/report.md.
absl::Status WriteReports(const std::string& dir, const PipelineReport& report);

// Writes a text file atomically (qat/file_io.h); an error names it.
absl::Status WriteText(const std::string& path, const std::string& text);

// A JSON string literal.
std::string JsonString(const std::string& text);

}  // namespace qat_cli

#endif  // QAT_EXAMPLES_CLI_PIPELINE_REPORT_H_
