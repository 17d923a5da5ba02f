// qat eval MODEL.onnx [--data DIR] [--split test|train] [--limit N]
//          [--batch B] [--threads T] [--mean M] [--std S]
//
// Accuracy of a classifier on an IDX data set laid out like MNIST: the
// argmax of the model's first output against the labels.  Prints one JSON
// line, {"accuracy": ..., "images_per_s": ...}, where the rate counts the
// executor's time only.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli_common.h"
#include "commands.h"
#include "load_executor.h"
#include "qat/dataset.h"
#include "qat/executor.h"

namespace qat_cli {

int EvalCommand(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv,
                 {"--data", "--split", "--limit", "--batch", "--threads", "--mean", "--std"},
                 {}, &args, &error)) {
    return Usage(error);
  }
  if (args.positional.size() != 1) return Usage("eval needs exactly one model");
  qat::IdxOptions options;
  options.split = args.Get("--split", "test");
  int64_t threads = 0, batch = 64, limit = 0;
  double mean = options.mean, std_dev = options.std;
  if (!IntFlag(args, "--threads", 0, &threads) || !IntFlag(args, "--limit", 0, &limit) ||
      !IntFlag(args, "--batch", 1, &batch) || !FloatFlag(args, "--mean", -1e9, &mean) ||
      !FloatFlag(args, "--std", 1e-12, &std_dev)) {
    return Usage("bad --threads, --limit, --batch, --mean or --std value");
  }
  if (options.split != "test" && options.split != "train") {
    return Usage("--split must be test or train");
  }
  options.mean = static_cast<float>(mean);
  options.std = static_cast<float>(std_dev);
  options.limit = limit;

  auto executor = LoadExecutor(args.positional[0], threads);
  if (!executor.ok()) return Fail(executor.status());
  if ((*executor)->inputs().size() != 1 || (*executor)->outputs().empty()) {
    return Fail(absl::InvalidArgumentError("eval needs a model with one input"));
  }
  const qat::ValueInfo& input = (*executor)->inputs()[0];
  if (input.shape.size() != 2 && input.shape.size() != 4) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "the model's input '", input.name,
        "' must have rank 2 ([N,784]) or 4 ([N,1,28,28])")));
  }
  options.example_shape.assign(input.shape.begin() + 1, input.shape.end());
  auto data = qat::Dataset::FromIdx(args.Get("--data", qat::kFashionMnistDir), options);
  if (!data.ok()) return Fail(data.status());

  // A model with a fixed batch size gets batches of that size; the images
  // left over at the end are then not evaluated.
  const bool fixed_batch = input.shape[0] > 0;
  if (fixed_batch) batch = input.shape[0];
  const int64_t total = data->size();
  const int64_t* labels = data->labels().data<int64_t>();
  int64_t correct = 0, seen = 0;
  double seconds = 0;
  qat::Tensor features, batch_labels;
  for (int64_t start = 0; start < total && (!fixed_batch || start + batch <= total);
       start += batch) {
    const int64_t n = std::min(batch, total - start);
    std::vector<int64_t> indices(static_cast<size_t>(n));
    std::iota(indices.begin(), indices.end(), start);
    data->Gather(indices, &features, &batch_labels);
    const auto begin = std::chrono::steady_clock::now();
    auto outputs = (*executor)->Run({{input.name, features}});
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    if (!outputs.ok()) return Fail(outputs.status());
    const qat::Tensor& scores = outputs->at((*executor)->outputs()[0].name);
    if (scores.dtype() != qat::DataType::kFloat32 || scores.rank() != 2 || scores.dim(0) != n) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "the model's first output must be float32 [N, classes], got ",
          qat::DataTypeName(scores.dtype()), " ", qat::ShapeToString(scores.shape()))));
    }
    const int64_t classes = scores.dim(1);
    for (int64_t i = 0; i < n; ++i) {
      const float* row = scores.data<float>() + i * classes;
      correct += (std::max_element(row, row + classes) - row) == labels[start + i];
    }
    seen += n;
  }
  if (seen == 0) return Fail(absl::InvalidArgumentError("no images were evaluated"));
  std::printf("{\"accuracy\": %.4f, \"images_per_s\": %.1f}\n",
              static_cast<double>(correct) / static_cast<double>(seen),
              seconds > 0 ? static_cast<double>(seen) / seconds : 0.0);
  return 0;
}

}  // namespace qat_cli
