// The flags of `qat calibrate` and `qat quantize`, parsed once for every
// command that calibrates or quantizes (calibrate, quantize, sensitivity),
// so that the same flag means the same thing everywhere.
#ifndef QAT_EXAMPLES_CLI_QUANTIZATION_FLAGS_H_
#define QAT_EXAMPLES_CLI_QUANTIZATION_FLAGS_H_

#include <string>
#include <vector>

#include "cli_common.h"
#include "qat/calibrate.h"
#include "qat/quantize.h"

namespace qat_cli {

// The valued flags and switches QuantizeFlags reads (for ParseArgs).
extern const std::vector<std::string> kQuantizeFlags, kQuantizeSwitches;
// --weight-bits, --activation-bits, --activation-type, --bits NODE=N|float,
// --weight-range, --activation-range, --block-size, --exclude, --include,
// --op-types; --per-channel, --weights-as-int8, --symmetric-activations,
// --reduce-range, --unsigned-weights, --affine-weights.  False with
// *error set for a bad value.
bool QuantizeFlags(const Args& args, qat::QuantizeOptions* options, std::string* error);

// The calibration method's flags: --method, --samples (default 1000),
// --batch, --threads, --percentile, --bins.
extern const std::vector<std::string> kCalibrateMethodFlags;
bool CalibrateMethodFlags(const Args& args, qat::CalibrateOptions* options, std::string* error);

// --weight-bits / --activation-bits: 2..8, with the library's message.
bool BitsFlag(const Args& args, const std::string& flag, int* bits, std::string* error);

}  // namespace qat_cli

#endif  // QAT_EXAMPLES_CLI_QUANTIZATION_FLAGS_H_
