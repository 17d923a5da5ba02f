// qat calibrate and qat quantize.
#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "cli_common.h"
#include "commands.h"
#include "progress.h"
#include "qat/calibrate.h"
#include "qat/data_spec.h"
#include "qat/quantize.h"
#include "quantization_flags.h"

namespace qat_cli {

int CalibrateCommand(int argc, char** argv) {
  Args args;
  std::string error;
  std::vector<std::string> valued = {"--data", "--out", "--weight-bits", "--activation-bits"};
  valued.insert(valued.end(), kCalibrateMethodFlags.begin(), kCalibrateMethodFlags.end());
  if (!ParseArgs(argc, argv, valued, {"--per-channel", "--symmetric-activations"}, &args,
                 &error)) {
    return Usage(error);
  }
  if (args.positional.size() != 1) return Usage("calibrate needs one model");
  if (!args.Has("--out")) return Usage("calibrate needs -o TABLE.json");
  if (!args.Has("--data")) return Usage("calibrate needs --data DATA (a folder, DATA.npz or FEATURES.npy; no labels needed)");
  qat::CalibrateOptions options;
  if (!CalibrateMethodFlags(args, &options, &error)) return Usage(error);
  const int64_t samples = options.max_samples;
  options.per_channel_weights = args.On("--per-channel");
  options.symmetric_activations = args.On("--symmetric-activations");
  if (options.symmetric_activations) options.activation_type = qat::QuantType::kInt8;
  if (!BitsFlag(args, "--weight-bits", &options.weight_bits, &error) ||
      !BitsFlag(args, "--activation-bits", &options.activation_bits, &error)) {
    return Usage(error);
  }

  auto model = qat::Model::Load(args.positional[0]);
  if (!model.ok()) return Fail(model.status());
  qat::DataSpecOptions spec;
  spec.limit = samples;
  auto data = qat::LoadDataSpec(args.Get("--data", ""), *model, spec);
  if (!data.ok()) return Fail(data.status());
  // Under `mpirun -np N`: each rank observes its shard, the observers merge
  // exactly, and rank 0 writes the table (docs/training.md).
  if (qat::LaunchedByMpirun()) {
    auto world = qat::MpiWorld();
    if (!world.ok()) return Fail(world.status());
    options.collective = *world;
  }
  const bool quiet = options.collective && options.collective->rank() != 0;
  std::unique_ptr<Progress> bar;
  options.progress = [&](int64_t done, int64_t total) {
    if (quiet) return;
    if (!bar) bar = std::make_unique<Progress>("calibrate", total, "samples");
    bar->Update(done, "observing activations");
  };
  auto table = qat::Calibrate(*model, *data, options);
  if (!table.ok()) return Fail(table.status());
  const std::string out = args.Get("--out", "");
  if (quiet) return 0;
  if (absl::Status s = table->Save(out); !s.ok()) return Fail(s);
  std::printf("wrote %s: %zu tensors, method %s\n", out.c_str(), table->entries().size(),
              qat::CalibrationMethodName(options.method));
  return 0;
}

int QuantizeCommand(int argc, char** argv) {
  Args args;
  std::string error;
  std::vector<std::string> valued = {"--table", "--out"};
  valued.insert(valued.end(), kQuantizeFlags.begin(), kQuantizeFlags.end());
  if (!ParseArgs(argc, argv, valued, kQuantizeSwitches, &args, &error)) return Usage(error);
  if (args.positional.size() != 1) return Usage("quantize needs one model");
  if (!args.Has("--table")) return Usage("quantize needs --table TABLE.json");
  if (!args.Has("--out")) return Usage("quantize needs -o OUT.onnx");
  qat::QuantizeOptions options;
  if (!QuantizeFlags(args, &options, &error)) return Usage(error);

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
