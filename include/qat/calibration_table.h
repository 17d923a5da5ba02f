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
// point inside QuantRangeFor(type, symmetric, reduce_range).  Load rejects
// unknown fields, so a misspelt key is an error rather than a silent default.
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
  // Set for per-channel entries: the axis the channels run along.
  std::optional<int64_t> axis;
  // One value per channel, or exactly one for a per-tensor entry.
  std::vector<float> rmin, rmax, scale;
  std::vector<int32_t> zero_point;

  int bits() const { return QuantTypeBits(type); }
  // The range zero_point must lie in, and that the quantizer clamps to.
  QuantRange quant_range() const {
    return QuantRangeFor(type, symmetric, reduce_range);
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
};

}  // namespace qat

#endif  // QAT_CALIBRATION_TABLE_H_
