// The pipeline's results: one row per model, printed as a table and written
// as report.json and report.md, with the accuracy targets checked.
#ifndef QAT_EXAMPLES_CLI_PIPELINE_REPORT_H_
#define QAT_EXAMPLES_CLI_PIPELINE_REPORT_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "ort_runner.h"

namespace qat_cli {

struct ModelRow {
  ModelRow() = default;
  ModelRow(std::string row_name, std::string row_file)
      : name(std::move(row_name)), file(std::move(row_file)) {}
  std::string name;    // "fp32", "ptq int8", "qat int8", "qat w4a8"
  std::string file;    // relative to the output folder
  std::string recipe;  // how it was made, in a few words
  double accuracy = 0.0;        // our executor, test set
  double start_accuracy = -1;   // QAT rows: before QAT (the fake-quantized start)
  size_t bytes = 0;
  double latency_ms = 0.0;      // our executor, one thread, one batch
  OrtMeasurement ort;
  double seconds = 0.0;         // time the stage took
};

// One curve point per epoch (x may be fractional for the start of a stage).
struct EpochPoint {
  double epoch = 0.0;
  double train_loss = -1.0;  // -1: none (the point before training)
  double test_loss = 0.0;
  double test_accuracy = 0.0;
};

struct StageCurve {
  StageCurve() = default;
  explicit StageCurve(std::string curve_name) : name(std::move(curve_name)) {}
  std::string name;
  std::vector<EpochPoint> points;
};

struct PipelineReport {
  std::string model;  // "zoo:mlp", "zoo:lenet5" or the file
  std::string data;
  int64_t latency_batch = 64;
  std::string settings;  // the flags that shaped the run, as JSON object text
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
