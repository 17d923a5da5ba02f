// Evaluate: how well a classifier does on a labelled dataset, on the
// executor.  The one implementation of accuracy for `qat eval`, `qat
// pipeline` and the C ABI.
//
//   QAT_ASSIGN_OR_RETURN(Model model, Model::Load("int8.onnx"));
//   QAT_ASSIGN_OR_RETURN(Dataset test, LoadDataSpec(kFashionMnistDir, model, {"test"}));
//   QAT_ASSIGN_OR_RETURN(EvalReport report, Evaluate(model, test));
//   std::printf("%s\n", report.ToJson().c_str());
//
// The model's output (the first unless `output` names another) is read as
// float32 logits [N, classes]; an example is correct when the index of its
// largest logit (the first one on ties) equals its int64 label.  The mean
// loss is the softmax cross-entropy of the logits against the labels,
// computed in double (a label outside [0, classes) counts as wrong and makes
// it infinite).  Examples go in the dataset's order, in batches of
// `batch_size`; a model whose input has a fixed batch dimension gets
// batches of that size, and the examples left over at the end are then not
// evaluated (EvalReport::examples says how many were).
//
// Errors: InvalidArgument for a model without inputs, data that does not
// bind to them (Dataset::Bind), an output that is not float32 [N, classes],
// no labels or labels that are not int64, or no example evaluated;
// the executor's errors otherwise (Unimplemented naming an unsupported op).
// Determinism: for a given thread count and batch size the report (but for
// `seconds`) is bit-identical from run to run.
// Thread safety: each call compiles its own executor; calls may run
// concurrently.
#ifndef QAT_EVALUATE_H_
#define QAT_EVALUATE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qat/api.h"
#include "qat/dataset.h"
#include "qat/model.h"

namespace qat {

struct EvaluateOptions {
  int64_t batch_size = 64;
  int num_threads = 0;  // 0: one per core
  std::string input;    // "": every input (the data's arrays by name); else the one fed
  std::string output;   // "": the model's first output
};

struct EvalReport {
  int64_t examples = 0;  // examples evaluated
  int64_t correct = 0;
  double accuracy = 0.0;   // correct / examples
  double mean_loss = 0.0;  // mean softmax cross-entropy
  double seconds = 0.0;    // time spent in the executor only

  // One JSON line as `qat eval` prints it:
  //   {"accuracy": 0.9500, "images_per_s": 1234.5}
  // images_per_s counts the executor's time only (0 when it took none).
  QAT_API std::string ToJson() const;
};

QAT_API absl::StatusOr<EvalReport> Evaluate(const Model& model, const Dataset& data,
                                            const EvaluateOptions& options = {});

// The same over data that arrives in parts (the C ABI's batch callback, a
// Python iterable): `next` gives each part as a labelled Dataset, or
// nullopt when there are no more, and each part is scored as it comes, in
// batches of batch_size (a fixed batch dimension drops each part's
// leftover), so the parts never have to fit in memory together.  Every
// example counts as in Evaluate, in the parts' order: parts that
// concatenate to `data`, each a multiple of batch_size long but for the
// last, give Evaluate(model, data)'s report.  An error from `next` stops
// the evaluation and is returned.
using EvalBatchSource = std::function<absl::StatusOr<std::optional<Dataset>>()>;
QAT_API absl::StatusOr<EvalReport> EvaluateBatches(const Model& model, const EvalBatchSource& next,
                                                   const EvaluateOptions& options = {});

// Metrics for any model, per float output, over the whole data set (every
// input fed by name, Dataset::Bind):
//  - top1, top5: when the data has int64 labels [N] and the output is a
//    classifier's [N, C] (top5 only for C >= 5); -1 otherwise;
//  - against a reference model (the fp32 model, say) run on the same
//    batches, its output of the same name: relative L2 error
//    ||y - r|| / ||r||, SQNR 10 log10(||r||^2 / ||y - r||^2) dB (capped at
//    kMaxSqnrDb when they are equal), max |y - r|, cosine similarity of the
//    flattened outputs, and argmax agreement over the last axis (rank >= 2).
struct OutputMetrics {
  std::string name;
  double top1 = -1.0, top5 = -1.0;
  bool has_reference = false;
  double relative_l2 = 0.0, sqnr_db = 0.0, max_abs_error = 0.0, cosine = 0.0;
  double argmax_agreement = -1.0;  // -1: rank < 2
};

inline constexpr double kMaxSqnrDb = 200.0;

struct ModelMetrics {
  int64_t examples = 0;
  std::vector<OutputMetrics> outputs;  // in the model's output order
  // One JSON line: {"examples": N, "outputs": {"<name>": {"top1": ..., ...}}};
  // a metric that does not apply is left out.
  QAT_API std::string ToJson() const;
};

// Errors: InvalidArgument when the data does not bind to the model's inputs
// (or the reference's), a reference output of the same name is missing or
// shaped differently, or no example was evaluated; the executors' errors.
QAT_API absl::StatusOr<ModelMetrics> EvaluateOutputs(const Model& model, const Dataset& data,
                                                     const Model* reference = nullptr,
                                                     const EvaluateOptions& options = {});

}  // namespace qat

#endif  // QAT_EVALUATE_H_
