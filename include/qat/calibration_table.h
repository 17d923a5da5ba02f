// The calibration table: for every calibrated tensor, its range and the
// scale and zero point to quantize it with.  `qat calibrate` writes it,
// `qat quantize` reads it, and people may edit it by hand.
//
// The file is JSON; docs/calibration.md describes it with an example:
//
//   {
//     "version": 1,
//     "tensors": {
//       "input": {"role": "activation", "type": "uint8", "bits": 8,
//                 "method": "percentile", "symmetric": false,
//                 "reduce_range": false, "rmin": -1, "rmax": 2,
//                 "scale": 0.011764706, "zero_point": 85},
//       "fc1.weight": {"role": "weight", "type": "int8", "bits": 8,
//                      "method": "minmax", "symmetric": true,
//                      "reduce_range": false, "axis": 0,
//                      "rmin": [-0.5, -0.25], "rmax": [0.5, 0.125],
//                      "scale": [0.003937008, 0.001968504],
//                      "zero_point": [0, 0]}
//     }
//   }
//
// Per-channel entries have an "axis" and hold arrays, one value per channel;
// per-tensor entries hold numbers.  Every entry is checked when it is set or
// loaded: known role, type and method; bits equal to the type's; equal array
// lengths; finite rmin <= rmax; a positive, finite scale; an integer zero
// point inside the entry's quant_range().  Load rejects unknown fields, so a
// misspelt key is an error rather than a silent default.
//
// Sub-8-bit grids (issue 15): "bits" may be smaller than the type's width
// (from 2), with the values stored in the type: {"type": "uint8", "bits": 3}
// is the grid [0, 7].  An optional "range": "narrow" | "full" sets
// QuantRangeMode (absent: auto).  An optional top-level "node_overrides"
// object maps node names to {"keep_float": bool, "weight_bits": N,
// "activation_bits": N} (each optional; 0 or absent: the quantizer's own),
// which quantize honours (docs/formats.md).
#ifndef QAT_CALIBRATION_TABLE_H_
#define QAT_CALIBRATION_TABLE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "qat/api.h"
#include "qat/node_quant_override.h"
#include "qat/observer.h"
#include "qat/quant_params.h"

namespace qat {

enum class TensorRole { kActivation, kWeight };

// "activation", "weight".
QAT_API const char* TensorRoleName(TensorRole role);

struct CalibrationEntry {
  TensorRole role = TensorRole::kActivation;
  QuantType type = QuantType::kUInt8;
  CalibrationMethod method = CalibrationMethod::kMinMax;
  bool symmetric = false;
  bool reduce_range = false;
  // The grid's width: 0 is the type's; else from 2 to the type's width.
  int num_bits = 0;
  QuantRangeMode range_mode = QuantRangeMode::kAuto;
  // Set for per-channel entries: the axis the channels run along.
  std::optional<int64_t> axis;
  // One value per channel, or exactly one for a per-tensor entry.
  std::vector<float> rmin, rmax, scale;
  std::vector<int32_t> zero_point;

  int bits() const { return num_bits > 0 ? num_bits : QuantTypeBits(type); }
  // The range zero_point must lie in, and that the quantizer clamps to
  // (QuantRangeFor(type, symmetric, reduce_range) at the type's width).
  QuantRange quant_range() const {
    return QuantRangeForBits(QuantTypeRange(type).quant_min < 0, bits(), symmetric,
                             reduce_range, range_mode);
  }
  int64_t num_channels() const { return static_cast<int64_t>(scale.size()); }
};

// Checks one entry (see the rules above).  InvalidArgument names the tensor.
QAT_API absl::Status ValidateCalibrationEntry(absl::string_view name,
                                              const CalibrationEntry& entry);

// Builds an entry from observed ranges (one per tensor, or one per channel
// with `axis`): the scale and zero point come from ComputeQuantParams on
// QuantRangeFor(type, symmetric, reduce_range).
QAT_API absl::StatusOr<CalibrationEntry> MakeCalibrationEntry(
    TensorRole role, QuantType type, CalibrationMethod method, bool symmetric,
    bool reduce_range, std::optional<int64_t> axis,
    const std::vector<ObservedRange>& ranges);
// The same at `bits` (2 up to the type's width) with a range mode.
QAT_API absl::StatusOr<CalibrationEntry> MakeCalibrationEntry(
    TensorRole role, QuantType type, int bits, QuantRangeMode range_mode,
    CalibrationMethod method, bool symmetric, bool reduce_range,
    std::optional<int64_t> axis, const std::vector<ObservedRange>& ranges);

// What Merge does with a tensor that both tables hold.
enum class MergeRule {
  // The other table's entry replaces ours: for hand-written overrides.
  kReplace,
  // The union of the two ranges, per channel, with the scale and zero point
  // recomputed: for calibration runs over different data.  The entries must
  // agree on role, type, symmetric, reduce_range, axis and channel count; the
  // method is kept when both agree and must agree otherwise.
  kUnionOfRanges,
};

class QAT_API CalibrationTable {
 public:
  // The format version this library reads and writes.
  static constexpr int kFormatVersion = 1;
  // The deepest nesting of JSON arrays and objects a table may have (a table
  // needs 4): deeper text is refused before it is parsed, so that reading
  // takes time linear in the file's size.
  static constexpr int kMaxJsonDepth = 64;

  // Reads a table.  Errors name the file and what is wrong with it.
  static absl::StatusOr<CalibrationTable> Load(const std::string& path);
  // `source` names the text in error messages (a file name, say).
  static absl::StatusOr<CalibrationTable> FromJson(absl::string_view json,
                                                   absl::string_view source);

  // Pretty-printed JSON, tensors in name order.
  absl::StatusOr<std::string> ToJson() const;
  // Writes atomically (qat/file_io.h): a temporary file in the same folder,
  // fsync, rename.  On failure the previous file, if any, is untouched.
  absl::Status Save(const std::string& path) const;

  // Validates and inserts (or replaces) one entry.
  absl::Status Set(const std::string& name, CalibrationEntry entry);
  // nullptr when the table has no such tensor.
  const CalibrationEntry* Find(absl::string_view name) const;
  const std::map<std::string, CalibrationEntry, std::less<>>& entries() const {
    return entries_;
  }

  // Per-node bit widths for quantize (see above), by node name.  Set
  // validates: widths 0 or 2..8.  Merge takes the other table's overrides
  // where both name a node.
  absl::Status SetNodeOverride(const std::string& node, const NodeQuantOverride& o);
  const std::map<std::string, NodeQuantOverride, std::less<>>& node_overrides() const {
    return node_overrides_;
  }

  // Adds every entry of `other`; see MergeRule for tensors in both.  On
  // error this table is unchanged.
  absl::Status Merge(const CalibrationTable& other, MergeRule rule);

  // AIMET's encodings JSON (format 0.6.1): activation_encodings and
  // param_encodings map each tensor to a list of encodings, one per channel,
  // each {bitwidth, dtype: "int", is_symmetric: "True"|"False", min, max,
  // offset, scale} on AIMET's unsigned grid [0, 2^bits - 1]:
  // offset = quant_min - zero_point, min = offset * scale,
  // max = (offset + 2^bits - 1) * scale.
  absl::StatusOr<std::string> ToAimetEncodings() const;

 private:
  std::map<std::string, CalibrationEntry, std::less<>> entries_;
  std::map<std::string, NodeQuantOverride, std::less<>> node_overrides_;
};

// InvalidArgument naming the node unless each width is 0 or 2..8.
QAT_API absl::Status ValidateNodeQuantOverride(absl::string_view node,
                                               const NodeQuantOverride& o);

}  // namespace qat

#endif  // QAT_CALIBRATION_TABLE_H_
