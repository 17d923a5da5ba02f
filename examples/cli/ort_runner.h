// Measuring a model in ONNX Runtime from the qat program: runs
// tests/ort/ort_eval.js with node (onnxruntime-node, installed by
// .ci/install-ort.sh into .deps/ort) and reads its JSON line.
//
// Everything fails soft: without node, the script or onnxruntime-node the
// measurement is "not available" with the reason, and the pipeline goes on.
#ifndef QAT_EXAMPLES_CLI_ORT_RUNNER_H_
#define QAT_EXAMPLES_CLI_ORT_RUNNER_H_

#include <cstdint>
#include <string>
#include <vector>

namespace qat_cli {

struct OrtMeasurement {
  bool available = false;
  std::string reason;  // why not, when !available
  double accuracy = 0.0;
  double latency_ms = 0.0;  // median per batch, one thread
};

// The folder holding ort_eval.js: `flag` when not empty, else the source
// tree's tests/ort (for a build tree), else <prefix>/share/libqat/ort next
// to the installed program.  Empty when none has the script.
std::string FindOrtScriptDir(const std::string& flag);

// Accuracy on the IDX test set in `data_dir` (its first `test_limit`
// examples; 0: all) and the latency of one batch of `batch` examples shaped
// `example_shape`.
OrtMeasurement MeasureInOrt(const std::string& script_dir, const std::string& model_path,
                            const std::string& data_dir,
                            const std::vector<int64_t>& example_shape, int64_t batch,
                            int64_t test_limit);

}  // namespace qat_cli

#endif  // QAT_EXAMPLES_CLI_ORT_RUNNER_H_
