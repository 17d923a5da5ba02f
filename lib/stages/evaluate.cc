#include "qat/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "qat/executor.h"
#include "qat/status_macros.h"
#include "train/classification.h"

namespace qat {
namespace {

// -log softmax(row)[label], in double.
double CrossEntropy(const float* row, int64_t classes, int64_t label) {
  if (label < 0 || label >= classes) return std::numeric_limits<double>::infinity();
  const double top = *std::max_element(row, row + classes);
  double sum = 0.0;
  for (int64_t c = 0; c < classes; ++c) sum += std::exp(static_cast<double>(row[c]) - top);
  return top + std::log(sum) - static_cast<double>(row[label]);
}

}  // namespace

std::string EvalReport::ToJson() const {
  return absl::StrFormat("{\"accuracy\": %.4f, \"images_per_s\": %.1f}", accuracy,
                         seconds > 0 ? static_cast<double>(examples) / seconds : 0.0);
}

absl::StatusOr<EvalReport> Evaluate(const Model& model, const Dataset& data,
                                    const EvaluateOptions& options) {
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the evaluation batch size must be >= 1, got ", options.batch_size));
  }
  if (!data.has_labels()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "accuracy needs labels, and '", data.source(), "' has none (labels.npy)"));
  }
  if (data.labels().dtype() != DataType::kInt64) {
    return absl::InvalidArgumentError(absl::StrCat(
        "evaluation needs int64 class labels, got ", DataTypeName(data.labels().dtype())));
  }
  const std::vector<ValueInfo> inputs = model.inputs();
  const std::vector<ValueInfo> outputs = model.outputs();
  const ValueInfo* input = nullptr;
  if (options.input.empty()) {
    if (!inputs.empty()) input = &inputs[0];  // every input is fed; this one sets the batch
  } else {
    for (const ValueInfo& v : inputs) {
      if (v.name == options.input) input = &v;
    }
  }
  if (input == nullptr) {
    return absl::InvalidArgumentError(
        options.input.empty()
            ? absl::StrCat("evaluation needs a model with an input; '", model.source(),
                           "' has none")
            : absl::StrCat("'", model.source(), "' has no input '", options.input, "'"));
  }
  std::string output = options.output;
  if (output.empty()) {
    if (outputs.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("'", model.source(), "' has no outputs"));
    }
    output = outputs[0].name;
  }
  ExecutorOptions exec_options;
  exec_options.num_threads = options.num_threads;
  QAT_ASSIGN_OR_RETURN(auto executor, Executor::Create(model, exec_options));

  // A model with a fixed batch size gets batches of that size; the examples
  // left over at the end are then not evaluated.
  const bool fixed_batch = !input->shape.empty() && input->shape[0] > 0;
  const int64_t batch = fixed_batch ? input->shape[0] : options.batch_size;
  const int64_t total = data.size();
  const int64_t* labels = data.labels().data<int64_t>();
  const std::vector<ValueInfo> fed =
      options.input.empty() ? inputs : std::vector<ValueInfo>{*input};
  QAT_ASSIGN_OR_RETURN(const InputBinding binding, data.Bind(fed, /*labels=*/false));
  EvalReport report;
  double loss_sum = 0.0;
  std::map<std::string, Tensor> features;
  std::vector<int64_t> indices;
  for (int64_t start = 0; start < total && (!fixed_batch || batch <= total - start);
       start += batch) {
    const int64_t n = std::min(batch, total - start);
    indices.resize(static_cast<size_t>(n));
    std::iota(indices.begin(), indices.end(), start);
    QAT_RETURN_IF_ERROR(data.Gather(indices, binding, &features));
    const auto begin = std::chrono::steady_clock::now();
    QAT_ASSIGN_OR_RETURN(auto out, executor->Run(features));
    report.seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    auto it = out.find(output);
    if (it == out.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", model.source(), "' has no output '", output, "'"));
    }
    const Tensor& scores = it->second;
    if (scores.dtype() != DataType::kFloat32 || scores.rank() != 2 || scores.dim(0) != n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the model's output '", output, "' must be float32 [N, classes], got ",
          DataTypeName(scores.dtype()), " ", ShapeToString(scores.shape())));
    }
    const int64_t classes = scores.dim(1);
    report.correct += CountCorrect(scores.data<float>(), n, classes, labels + start);
    for (int64_t i = 0; i < n; ++i) {
      loss_sum += CrossEntropy(scores.data<float>() + i * classes, classes, labels[start + i]);
    }
    report.examples += n;
  }
  if (report.examples == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no examples were evaluated (", total, " in the data set, batch ", batch, ")"));
  }
  report.accuracy = static_cast<double>(report.correct) / static_cast<double>(report.examples);
  report.mean_loss = loss_sum / static_cast<double>(report.examples);
  return report;
}

}  // namespace qat
