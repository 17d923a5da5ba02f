// qat calibrate and qat quantize.
#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli_common.h"
#include "commands.h"
#include "progress.h"
#include "qat/calibrate.h"
#include "qat/data_spec.h"
#include "qat/quantize.h"

namespace qat_cli {
namespace {

// --weight-bits / --activation-bits: 2..8, with the library's message.
bool BitsFlag(const Args& args, const std::string& flag, int* bits, std::string* error) {
  if (!args.Has(flag)) return true;
  int64_t v = 0;
  if (!IntFlag(args, flag, -1000, &v) || v < qat::kMinQuantBits || v > qat::kMaxQuantBits) {
    *error = absl::StrCat(flag, " must be an integer from ", qat::kMinQuantBits, " to ",
                          qat::kMaxQuantBits, ", got '", args.Get(flag, ""), "'");
    return false;
  }
  *bits = static_cast<int>(v);
  return true;
}

// --bits NODE=N[,NODE=N]: weight bits per node; N may be "float" to keep the
// node unquantized.
bool ParseBitsOverrides(const std::string& list,
                        std::map<std::string, qat::NodeQuantOverride>* out,
                        std::string* error) {
  for (const std::string& item : SplitList(list)) {
    const size_t eq = item.rfind('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size()) {
      *error = absl::StrCat("--bits takes NODE=N[,NODE=N], got '", item, "'");
      return false;
    }
    const std::string node = item.substr(0, eq), value = item.substr(eq + 1);
    qat::NodeQuantOverride o = (*out)[node];
    if (value == "float") {
      o.keep_float = true;
    } else {
      int bits = 0;
      if (!absl::SimpleAtoi(value, &bits) || bits < qat::kMinQuantBits ||
          bits > qat::kMaxQuantBits) {
        *error = absl::StrCat("--bits ", item, ": N must be from ", qat::kMinQuantBits, " to ",
                              qat::kMaxQuantBits, " or 'float'");
        return false;
      }
      o.weight_bits = bits;
    }
    (*out)[node] = o;
  }
  return true;
}

absl::StatusOr<qat::QuantRangeMode> RangeFlag(const Args& args, const std::string& flag) {
  return qat::ParseQuantRangeMode(args.Get(flag, "auto"));
}

}  // namespace

int CalibrateCommand(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv,
                 {"--data", "--out", "--samples", "--method", "--batch", "--threads",
                  "--percentile", "--bins", "--weight-bits", "--activation-bits"},
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
  if (!ParseArgs(argc, argv,
                 {"--table", "--out", "--weight-bits", "--activation-type", "--exclude",
                  "--include", "--op-types", "--activation-bits", "--bits", "--weight-range",
                  "--activation-range", "--block-size", "--embedding-bits", "--calibration"},
                 {"--per-channel", "--weights-as-int8", "--symmetric-activations",
                  "--reduce-range", "--unsigned-weights", "--affine-weights"},
                 &args, &error)) {
    return Usage(error);
  }
  if (args.positional.size() != 1) return Usage("quantize needs one model");
  if (!args.Has("--table")) return Usage("quantize needs --table TABLE.json");
  if (!args.Has("--out")) return Usage("quantize needs -o OUT.onnx");
  qat::QuantizeOptions options;
  if (!BitsFlag(args, "--weight-bits", &options.weight_bits, &error) ||
      !BitsFlag(args, "--activation-bits", &options.activation_bits, &error) ||
      !ParseBitsOverrides(args.Get("--bits", ""), &options.node_overrides, &error)) {
    return Usage(error);
  }
  auto weight_range = RangeFlag(args, "--weight-range");
  if (!weight_range.ok()) return Usage(std::string(weight_range.status().message()));
  auto activation_range = RangeFlag(args, "--activation-range");
  if (!activation_range.ok()) return Usage(std::string(activation_range.status().message()));
  options.weight_range = *weight_range;
  options.activation_range = *activation_range;
  options.weight_signed = !args.On("--unsigned-weights");
  options.symmetric_weights = !args.On("--affine-weights");
  if (args.Has("--block-size")) {
    // Block-wise 4-bit MatMul/Gemm weights along the reduction axis (opset 21).
    if (!IntFlag(args, "--block-size", 1, &options.block_size) || options.weight_bits != 4) {
      return Usage("--block-size needs a positive block size and --weight-bits 4");
    }
  }
  if (args.Has("--embedding-bits")) {
    // Gather embeddings: 4-bit, block-wise along the embedding dimension.
    int64_t bits = 0;
    if (!IntFlag(args, "--embedding-bits", 4, &bits) || bits != 4) {
      return Usage("--embedding-bits takes 4 (block-wise INT4 at opset 21)");
    }
    options.embedding_bits = 4;
  }
  if (args.Has("--calibration")) {
    // How block-wise weights (--block-size, --embedding-bits) get their ranges.
    const std::string method = args.Get("--calibration", "");
    if (method != "minmax" && method != "mse") {
      return Usage("--calibration must be minmax or mse (the block-wise weights' ranges)");
    }
    if (options.block_size == 0 && options.embedding_bits == 0) {
      return Usage("--calibration applies to block-wise weights: give --block-size or "
                   "--embedding-bits");
    }
    options.mse_block_weights = method == "mse";
  }
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
