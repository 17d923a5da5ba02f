#include "qat/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <map>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
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

namespace {

// What Evaluate and EvaluateBatches share: the model's input, output and
// executor, checked once; then each data set is scored in order.
class Scorer {
 public:
  static absl::StatusOr<Scorer> Create(const Model& model, const EvaluateOptions& options) {
    if (options.batch_size < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("the evaluation batch size must be >= 1, got ", options.batch_size));
    }
    Scorer s;
    s.source_ = model.source();
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
    s.output_ = options.output;
    if (s.output_.empty()) {
      if (outputs.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("'", model.source(), "' has no outputs"));
      }
      s.output_ = outputs[0].name;
    }
    ExecutorOptions exec_options;
    exec_options.num_threads = options.num_threads;
    QAT_ASSIGN_OR_RETURN(s.executor_, Executor::Create(model, exec_options));
    // A model with a fixed batch size gets batches of that size; the examples
    // left over at the end are then not evaluated.
    s.fixed_batch_ = !input->shape.empty() && input->shape[0] > 0;
    s.batch_ = s.fixed_batch_ ? input->shape[0] : options.batch_size;
    s.fed_ = options.input.empty() ? inputs : std::vector<ValueInfo>{*input};
    return s;
  }

  // Scores every example of `data` (in batches of the batch size).
  absl::Status Add(const Dataset& data) {
    if (!data.has_labels()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "accuracy needs labels, and '", data.source(), "' has none (labels.npy)"));
    }
    if (data.labels().dtype() != DataType::kInt64) {
      return absl::InvalidArgumentError(absl::StrCat(
          "evaluation needs int64 class labels, got ", DataTypeName(data.labels().dtype())));
    }
    const int64_t total = data.size();
    total_ += total;
    const int64_t* labels = data.labels().data<int64_t>();
    QAT_ASSIGN_OR_RETURN(const InputBinding binding, data.Bind(fed_, /*labels=*/false));
    for (int64_t start = 0; start < total && (!fixed_batch_ || batch_ <= total - start);
         start += batch_) {
      const int64_t n = std::min(batch_, total - start);
      indices_.resize(static_cast<size_t>(n));
      std::iota(indices_.begin(), indices_.end(), start);
      QAT_RETURN_IF_ERROR(data.Gather(indices_, binding, &features_));
      const auto begin = std::chrono::steady_clock::now();
      QAT_ASSIGN_OR_RETURN(auto out, executor_->Run(features_));
      report_.seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
      auto it = out.find(output_);
      if (it == out.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", source_, "' has no output '", output_, "'"));
      }
      const Tensor& scores = it->second;
      if (scores.dtype() != DataType::kFloat32 || scores.rank() != 2 || scores.dim(0) != n) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the model's output '", output_, "' must be float32 [N, classes], got ",
            DataTypeName(scores.dtype()), " ", ShapeToString(scores.shape())));
      }
      const int64_t classes = scores.dim(1);
      report_.correct += CountCorrect(scores.data<float>(), n, classes, labels + start);
      for (int64_t i = 0; i < n; ++i) {
        loss_sum_ += CrossEntropy(scores.data<float>() + i * classes, classes, labels[start + i]);
      }
      report_.examples += n;
    }
    return absl::OkStatus();
  }

  absl::StatusOr<EvalReport> Finish() const {
    if (report_.examples == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "no examples were evaluated (", total_, " in the data set, batch ", batch_, ")"));
    }
    EvalReport r = report_;
    r.accuracy = static_cast<double>(r.correct) / static_cast<double>(r.examples);
    r.mean_loss = loss_sum_ / static_cast<double>(r.examples);
    return r;
  }

 private:
  Scorer() = default;
  std::string source_, output_;
  std::unique_ptr<Executor> executor_;
  bool fixed_batch_ = false;
  int64_t batch_ = 0;
  std::vector<ValueInfo> fed_;
  EvalReport report_;
  double loss_sum_ = 0.0;
  int64_t total_ = 0;
  std::map<std::string, Tensor> features_;
  std::vector<int64_t> indices_;
};

}  // namespace

absl::StatusOr<EvalReport> Evaluate(const Model& model, const Dataset& data,
                                    const EvaluateOptions& options) {
  QAT_ASSIGN_OR_RETURN(Scorer scorer, Scorer::Create(model, options));
  QAT_RETURN_IF_ERROR(scorer.Add(data));
  return scorer.Finish();
}

absl::StatusOr<EvalReport> EvaluateBatches(const Model& model, const EvalBatchSource& next,
                                           const EvaluateOptions& options) {
  QAT_ASSIGN_OR_RETURN(Scorer scorer, Scorer::Create(model, options));
  for (;;) {
    QAT_ASSIGN_OR_RETURN(std::optional<Dataset> part, next());
    if (!part.has_value()) break;
    QAT_RETURN_IF_ERROR(scorer.Add(*part));
  }
  return scorer.Finish();
}

namespace {

// Sums over every example, in double, for one output.
struct OutputSums {
  double err2 = 0.0, ref2 = 0.0, out2 = 0.0, dot = 0.0, max_abs = 0.0;
  int64_t rows = 0, agree = 0, top1 = 0, top5 = 0, labelled = 0, classes = 0;
};

bool InTopK(const float* row, int64_t classes, int64_t label, int k) {
  if (label < 0 || label >= classes) return false;
  int64_t above = 0;  // classes ranked before the label (ties: the lower index first)
  for (int64_t c = 0; c < classes; ++c) {
    above += row[c] > row[label] || (row[c] == row[label] && c < label);
  }
  return above < k;
}

std::string Number(double v) { return std::isfinite(v) ? absl::StrFormat("%.6g", v) : "null"; }

}  // namespace

std::string ModelMetrics::ToJson() const {
  std::string out = absl::StrCat("{\"examples\": ", examples, ", \"outputs\": {");
  for (size_t i = 0; i < outputs.size(); ++i) {
    const OutputMetrics& m = outputs[i];
    std::vector<std::string> fields;
    if (m.top1 >= 0) fields.push_back(absl::StrCat("\"top1\": ", Number(m.top1)));
    if (m.top5 >= 0) fields.push_back(absl::StrCat("\"top5\": ", Number(m.top5)));
    if (m.has_reference) {
      fields.push_back(absl::StrCat("\"relative_l2\": ", Number(m.relative_l2)));
      fields.push_back(absl::StrCat("\"sqnr_db\": ", Number(m.sqnr_db)));
      fields.push_back(absl::StrCat("\"max_abs_error\": ", Number(m.max_abs_error)));
      fields.push_back(absl::StrCat("\"cosine\": ", Number(m.cosine)));
      if (m.argmax_agreement >= 0) {
        fields.push_back(absl::StrCat("\"argmax_agreement\": ", Number(m.argmax_agreement)));
      }
    }
    absl::StrAppend(&out, i ? ", " : "", "\"", m.name, "\": {", absl::StrJoin(fields, ", "), "}");
  }
  return out + "}}";
}

absl::StatusOr<ModelMetrics> EvaluateOutputs(const Model& model, const Dataset& data,
                                             const Model* reference,
                                             const EvaluateOptions& options) {
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the evaluation batch size must be >= 1, got ", options.batch_size));
  }
  ExecutorOptions exec_options;
  exec_options.num_threads = options.num_threads;
  QAT_ASSIGN_OR_RETURN(auto executor, Executor::Create(model, exec_options));
  std::unique_ptr<Executor> ref_executor;
  const std::vector<ValueInfo> inputs = model.inputs();
  QAT_ASSIGN_OR_RETURN(const InputBinding binding, data.Bind(inputs, false));
  std::optional<InputBinding> ref_binding;
  if (reference != nullptr) {
    QAT_ASSIGN_OR_RETURN(ref_executor, Executor::Create(*reference, exec_options));
    QAT_ASSIGN_OR_RETURN(ref_binding, data.Bind(reference->inputs(), false));
  }
  const bool fixed_batch = !inputs.empty() && !inputs[0].shape.empty() && inputs[0].shape[0] > 0;
  const int64_t batch = fixed_batch ? inputs[0].shape[0] : options.batch_size;
  const bool labelled = data.has_labels() && data.labels().dtype() == DataType::kInt64 &&
                        data.labels().rank() == 1;
  const std::vector<ValueInfo> outputs = model.outputs();
  std::vector<OutputSums> sums(outputs.size());
  ModelMetrics metrics;
  std::map<std::string, Tensor> features, ref_features;
  std::vector<int64_t> indices;
  for (int64_t start = 0; start < data.size() && (!fixed_batch || batch <= data.size() - start);
       start += batch) {
    const int64_t n = std::min(batch, data.size() - start);
    indices.resize(static_cast<size_t>(n));
    std::iota(indices.begin(), indices.end(), start);
    QAT_RETURN_IF_ERROR(data.Gather(indices, binding, &features));
    QAT_ASSIGN_OR_RETURN(auto out, executor->Run(features));
    std::map<std::string, Tensor> ref_out;
    if (ref_executor) {
      QAT_RETURN_IF_ERROR(data.Gather(indices, *ref_binding, &ref_features));
      QAT_ASSIGN_OR_RETURN(ref_out, ref_executor->Run(ref_features));
    }
    for (size_t o = 0; o < outputs.size(); ++o) {
      const Tensor& y = out.at(outputs[o].name);
      if (y.dtype() != DataType::kFloat32) continue;
      OutputSums& s = sums[o];
      const float* yv = y.data<float>();
      const int64_t last = y.rank() >= 2 ? y.dim(y.rank() - 1) : 1;
      const int64_t rows = y.rank() >= 2 ? y.num_elements() / std::max<int64_t>(1, last) : 0;
      if (labelled && y.rank() == 2 && y.dim(0) == n && last >= 2) {
        const int64_t* labels = data.labels().data<int64_t>() + start;
        for (int64_t i = 0; i < n; ++i) {
          s.top1 += InTopK(yv + i * last, last, labels[i], 1);
          s.top5 += InTopK(yv + i * last, last, labels[i], 5);
        }
        s.labelled += n;
        s.classes = last;
      }
      if (!ref_executor) continue;
      auto it = ref_out.find(outputs[o].name);
      if (it == ref_out.end() || it->second.shape() != y.shape() ||
          it->second.dtype() != DataType::kFloat32) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the reference '", reference->source(), "' has no float32 output '",
            outputs[o].name, "' shaped ", ShapeToString(y.shape())));
      }
      const float* rv = it->second.data<float>();
      for (int64_t i = 0; i < y.num_elements(); ++i) {
        const double d = static_cast<double>(yv[i]) - rv[i];
        s.err2 += d * d;
        s.ref2 += static_cast<double>(rv[i]) * rv[i];
        s.out2 += static_cast<double>(yv[i]) * yv[i];
        s.dot += static_cast<double>(yv[i]) * rv[i];
        s.max_abs = std::max(s.max_abs, std::abs(d));
      }
      for (int64_t r = 0; r < rows; ++r) {
        s.agree += PredictedClass(yv + r * last, last) == PredictedClass(rv + r * last, last);
      }
      s.rows += rows;
    }
    metrics.examples += n;
  }
  if (metrics.examples == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no examples were evaluated (", data.size(), " in the data set, batch ", batch, ")"));
  }
  for (size_t o = 0; o < outputs.size(); ++o) {
    const OutputSums& s = sums[o];
    OutputMetrics m;
    m.name = outputs[o].name;
    if (s.labelled > 0) {
      m.top1 = static_cast<double>(s.top1) / s.labelled;
      if (s.classes >= 5) m.top5 = static_cast<double>(s.top5) / s.labelled;
    }
    if (ref_executor) {
      m.has_reference = true;
      m.relative_l2 = s.ref2 > 0 ? std::sqrt(s.err2 / s.ref2) : (s.err2 > 0 ? INFINITY : 0.0);
      m.sqnr_db = s.err2 > 0 ? std::min(kMaxSqnrDb, 10.0 * std::log10(s.ref2 / s.err2)) : kMaxSqnrDb;
      m.max_abs_error = s.max_abs;
      m.cosine = s.out2 > 0 && s.ref2 > 0 ? s.dot / std::sqrt(s.out2 * s.ref2) : (s.out2 == s.ref2 ? 1.0 : 0.0);
      if (s.rows > 0) m.argmax_agreement = static_cast<double>(s.agree) / s.rows;
    }
    metrics.outputs.push_back(m);
  }
  return metrics;
}

}  // namespace qat
