// qat calibrate and qat quantize.
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "cli_common.h"
#include "commands.h"
#include "progress.h"
#include "qat/calibrate.h"
#include "qat/data_spec.h"
#include "qat/quantize.h"

namespace qat_cli {

int CalibrateCommand(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv,
                 {"--data", "--out", "--samples", "--method", "--batch", "--threads",
                  "--percentile", "--bins"},
                 {"--per-channel", "--symmetric-activations"}, &args, &error)) {
    return Usage(error);
  }
  if (args.positional.size() != 1) return Usage("calibrate needs one model");
  if (!args.Has("--out")) return Usage("calibrate needs -o TABLE.json");
  if (!args.Has("--data")) return Usage("calibrate needs --data DATA (a folder, DATA.npz or FEATURES.npy; no labels needed)");
  qat::CalibrateOptions options;
  auto method = qat::ParseCalibrationMethod(args.Get("--method", "minmax"));
  if (!method.ok()) return Usage(std::string(method.status().message()));
  options.method = *method;
  int64_t samples = 1000, batch = 64, threads = 0, bins = options.observer.num_bins;
  double percentile = options.observer.percentile;
  if (!IntFlag(args, "--samples", 1, &samples) || !IntFlag(args, "--batch", 1, &batch) ||
      !IntFlag(args, "--threads", 0, &threads) || !IntFlag(args, "--bins", 2, &bins) ||
      !FloatFlag(args, "--percentile", 0.0, &percentile)) {
    return Usage("a numeric option is out of range or does not parse");
  }
  options.max_samples = samples;
  options.batch_size = batch;
  options.num_threads = static_cast<int>(threads);
  options.observer.num_bins = static_cast<int>(bins);
  options.observer.percentile = percentile;
  options.per_channel_weights = args.On("--per-channel");
  options.symmetric_activations = args.On("--symmetric-activations");
  if (options.symmetric_activations) options.activation_type = qat::QuantType::kInt8;

  auto model = qat::Model::Load(args.positional[0]);
  if (!model.ok()) return Fail(model.status());
  qat::DataSpecOptions spec;
  spec.limit = samples;
  auto data = qat::LoadDataSpec(args.Get("--data", ""), *model, spec);
  if (!data.ok()) return Fail(data.status());
  std::unique_ptr<Progress> bar;
  options.progress = [&](int64_t done, int64_t total) {
    if (!bar) bar = std::make_unique<Progress>("calibrate", total, "samples");
    bar->Update(done, "observing activations");
  };
  auto table = qat::Calibrate(*model, *data, options);
  if (!table.ok()) return Fail(table.status());
  const std::string out = args.Get("--out", "");
  if (absl::Status s = table->Save(out); !s.ok()) return Fail(s);
  std::printf("wrote %s: %zu tensors, method %s\n", out.c_str(), table->entries().size(),
              qat::CalibrationMethodName(options.method));
  return 0;
}

int QuantizeCommand(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv,
                 {"--table", "--out", "--weight-bits", "--activation-type", "--exclude",
                  "--include", "--op-types"},
                 {"--per-channel", "--weights-as-int8", "--symmetric-activations",
                  "--reduce-range"},
                 &args, &error)) {
    return Usage(error);
  }
  if (args.positional.size() != 1) return Usage("quantize needs one model");
  if (!args.Has("--table")) return Usage("quantize needs --table TABLE.json");
  if (!args.Has("--out")) return Usage("quantize needs -o OUT.onnx");
  qat::QuantizeOptions options;
  int64_t bits = 8;
  if (!IntFlag(args, "--weight-bits", 1, &bits) || (bits != 8 && bits != 4)) {
    return Usage("--weight-bits must be 8 or 4");
  }
  options.weight_bits = static_cast<int>(bits);
  auto type = qat::ParseQuantType(args.Get("--activation-type", "uint8"));
  if (!type.ok()) return Usage(std::string(type.status().message()));
  options.activation_type = *type;
  options.per_channel = args.On("--per-channel");
  options.weights_as_int8 = args.On("--weights-as-int8");
  options.symmetric_activations = args.On("--symmetric-activations");
  options.reduce_range = args.On("--reduce-range");
  options.exclude_nodes = SplitList(args.Get("--exclude", ""));
  options.include_nodes = SplitList(args.Get("--include", ""));
  if (args.Has("--op-types")) options.op_types = SplitList(args.Get("--op-types", ""));

  auto model = qat::Model::Load(args.positional[0]);
  if (!model.ok()) return Fail(model.status());
  auto table = qat::CalibrationTable::Load(args.Get("--table", ""));
  if (!table.ok()) return Fail(table.status());
  std::vector<std::string> warnings;
  auto quantized = qat::QuantizeModel(*model, *table, options, &warnings);
  if (!quantized.ok()) return Fail(quantized.status());
  for (const std::string& w : warnings) std::fprintf(stderr, "qat: warning: %s\n", w.c_str());
  const std::string out = args.Get("--out", "");
  if (absl::Status s = quantized->Save(out); !s.ok()) return Fail(s);
  std::printf("wrote %s (%zu bytes)\n", out.c_str(), quantized->Serialize().size());
  return 0;
}

}  // namespace qat_cli
