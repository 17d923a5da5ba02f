// qat eval MODEL.onnx [--data DATA] [--reference FP32.onnx] [--split test|train]
//          [--limit N] [--batch B] [--threads T] [--mean M] [--std S]
//
// A single-input classifier with labelled data and no --reference: the
// accuracy of the argmax of the model's first output against the labels, as
// one JSON line {"accuracy": ..., "images_per_s": ...}, where the rate
// counts the executor's time only.  Any other model, data without labels,
// or --reference: per-output metrics (qat/evaluate.h, EvaluateOutputs) as
// one JSON line.
#include <cstdio>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "cli_common.h"
#include "commands.h"
#include "qat/data_spec.h"
#include "qat/evaluate.h"

namespace qat_cli {

int EvalCommand(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv,
                 {"--data", "--split", "--limit", "--batch", "--threads", "--mean", "--std",
                  "--reference"},
                 {}, &args, &error)) {
    return Usage(error);
  }
  if (args.positional.size() != 1) return Usage("eval needs exactly one model");
  qat::DataSpecOptions spec;
  spec.split = args.Get("--split", "test");
  int64_t threads = 0, batch = 64, limit = 0;
  double mean = spec.mean, std_dev = spec.std;
  if (!IntFlag(args, "--threads", 0, &threads) || !IntFlag(args, "--limit", 0, &limit) ||
      !IntFlag(args, "--batch", 1, &batch) || !FloatFlag(args, "--mean", -1e9, &mean) ||
      !FloatFlag(args, "--std", 1e-12, &std_dev)) {
    return Usage("bad --threads, --limit, --batch, --mean or --std value");
  }
  if (spec.split != "test" && spec.split != "train") {
    return Usage("--split must be test or train");
  }
  spec.mean = static_cast<float>(mean);
  spec.std = static_cast<float>(std_dev);
  spec.limit = limit;

  auto model = qat::Model::Load(args.positional[0]);
  if (!model.ok()) return Fail(model.status());
  const std::vector<qat::ValueInfo> inputs = model->inputs();
  if (model->outputs().empty()) {
    return Fail(absl::InvalidArgumentError("eval needs a model with an output"));
  }
  auto data = qat::LoadDataSpec(args.Get("--data", qat::kFashionMnistDir), *model, spec);
  if (!data.ok()) return Fail(data.status());
  qat::EvaluateOptions options;
  options.batch_size = batch;
  options.num_threads = static_cast<int>(threads);
  if (args.Has("--reference") || inputs.size() != 1 || !data->has_labels()) {
    std::optional<qat::Model> reference;
    if (args.Has("--reference")) {
      auto loaded = qat::Model::Load(args.Get("--reference", ""));
      if (!loaded.ok()) return Fail(loaded.status());
      reference = *std::move(loaded);
    }
    auto metrics = qat::EvaluateOutputs(*model, *data, reference ? &*reference : nullptr, options);
    if (!metrics.ok()) return Fail(metrics.status());
    std::printf("%s\n", metrics->ToJson().c_str());
    return 0;
  }
  if (inputs.size() != 1) {
    return Fail(absl::InvalidArgumentError("eval needs a model with one input"));
  }
  if (inputs[0].shape.size() != 2 && inputs[0].shape.size() != 4) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "the model's input '", inputs[0].name,
        "' must have rank 2 ([N,784]) or 4 ([N,1,28,28])")));
  }
  auto report = qat::Evaluate(*model, *data, options);
  if (!report.ok()) return Fail(report.status());
  std::printf("%s\n", report->ToJson().c_str());
  return 0;
}

}  // namespace qat_cli
