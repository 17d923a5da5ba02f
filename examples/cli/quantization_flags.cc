#include "quantization_flags.h"

#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace qat_cli {
namespace {

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

bool RangeFlag(const Args& args, const std::string& flag, qat::QuantRangeMode* mode,
               std::string* error) {
  auto parsed = qat::ParseQuantRangeMode(args.Get(flag, "auto"));
  if (!parsed.ok()) {
    *error = std::string(parsed.status().message());
    return false;
  }
  *mode = *parsed;
  return true;
}

}  // namespace

const std::vector<std::string> kQuantizeFlags = {
    "--weight-bits", "--activation-type", "--exclude",          "--include",
    "--op-types",    "--activation-bits", "--bits",             "--weight-range",
    "--activation-range", "--block-size", "--embedding-bits", "--calibration"};
const std::vector<std::string> kQuantizeSwitches = {
    "--per-channel",  "--weights-as-int8",  "--symmetric-activations",
    "--reduce-range", "--unsigned-weights", "--affine-weights", "--uint8-block-scales"};
const std::vector<std::string> kCalibrateMethodFlags = {"--method", "--samples", "--batch",
                                                        "--threads", "--percentile", "--bins"};

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

bool QuantizeFlags(const Args& args, qat::QuantizeOptions* options, std::string* error) {
  if (!BitsFlag(args, "--weight-bits", &options->weight_bits, error) ||
      !BitsFlag(args, "--activation-bits", &options->activation_bits, error) ||
      !ParseBitsOverrides(args.Get("--bits", ""), &options->node_overrides, error) ||
      !RangeFlag(args, "--weight-range", &options->weight_range, error) ||
      !RangeFlag(args, "--activation-range", &options->activation_range, error)) {
    return false;
  }
  options->weight_signed = !args.On("--unsigned-weights");
  options->symmetric_weights = !args.On("--affine-weights");
  if (args.Has("--block-size")) {
    // Block-wise 4-bit MatMul/Gemm weights along the reduction axis (opset 21).
    if (!IntFlag(args, "--block-size", 1, &options->block_size) || options->weight_bits != 4) {
      *error = "--block-size needs a positive block size and --weight-bits 4";
      return false;
    }
  }
  if (args.Has("--embedding-bits")) {
    // Gather embeddings: 4-bit, block-wise along the embedding dimension.
    int64_t bits = 0;
    if (!IntFlag(args, "--embedding-bits", 4, &bits) || bits != 4) {
      *error = "--embedding-bits takes 4 (block-wise INT4 at opset 21)";
      return false;
    }
    options->embedding_bits = 4;
  }
  if (args.On("--uint8-block-scales")) {
    // Block scales as uint8 codes times a power-of-two step per channel.
    if (options->block_size == 0 && options->embedding_bits == 0) {
      *error = "--uint8-block-scales applies to block-wise weights: give --block-size or "
               "--embedding-bits";
      return false;
    }
    options->uint8_block_scales = true;
  }
  if (args.Has("--calibration")) {
    // How block-wise weights (--block-size, --embedding-bits) get their ranges.
    const std::string method = args.Get("--calibration", "");
    if (method != "minmax" && method != "mse") {
      *error = "--calibration must be minmax or mse (the block-wise weights' ranges)";
      return false;
    }
    if (options->block_size == 0 && options->embedding_bits == 0) {
      *error = "--calibration applies to block-wise weights: give --block-size or "
               "--embedding-bits";
      return false;
    }
    options->mse_block_weights = method == "mse";
  }
  auto type = qat::ParseQuantType(args.Get("--activation-type", "uint8"));
  if (!type.ok()) {
    *error = std::string(type.status().message());
    return false;
  }
  options->activation_type = *type;
  options->per_channel = args.On("--per-channel");
  options->weights_as_int8 = args.On("--weights-as-int8");
  options->symmetric_activations = args.On("--symmetric-activations");
  options->reduce_range = args.On("--reduce-range");
  options->exclude_nodes = SplitList(args.Get("--exclude", ""));
  options->include_nodes = SplitList(args.Get("--include", ""));
  if (args.Has("--op-types")) options->op_types = SplitList(args.Get("--op-types", ""));
  return true;
}

bool CalibrateMethodFlags(const Args& args, qat::CalibrateOptions* options, std::string* error) {
  auto method = qat::ParseCalibrationMethod(args.Get("--method", "minmax"));
  if (!method.ok()) {
    *error = std::string(method.status().message());
    return false;
  }
  options->method = *method;
  int64_t samples = 1000, batch = 64, threads = 0, bins = options->observer.num_bins;
  double percentile = options->observer.percentile;
  if (!IntFlag(args, "--samples", 1, &samples) || !IntFlag(args, "--batch", 1, &batch) ||
      !IntFlag(args, "--threads", 0, &threads) || !IntFlag(args, "--bins", 2, &bins) ||
      !FloatFlag(args, "--percentile", 0.0, &percentile)) {
    *error = "a numeric option is out of range or does not parse";
    return false;
  }
  options->max_samples = samples;
  options->batch_size = batch;
  options->num_threads = static_cast<int>(threads);
  options->observer.num_bins = static_cast<int>(bins);
  options->observer.percentile = percentile;
  return true;
}

}  // namespace qat_cli
