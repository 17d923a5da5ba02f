#include "qat/lr_schedule.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace qat {

absl::StatusOr<LrScheduleKind> ParseLrScheduleKind(absl::string_view name) {
  for (LrScheduleKind k : {LrScheduleKind::kConstant, LrScheduleKind::kLinear,
                           LrScheduleKind::kCosine}) {
    if (name == LrScheduleKindName(k)) return k;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown schedule '", name, "'; expected constant, linear or cosine"));
}

const char* LrScheduleKindName(LrScheduleKind kind) {
  switch (kind) {
    case LrScheduleKind::kConstant: return "constant";
    case LrScheduleKind::kLinear: return "linear";
    case LrScheduleKind::kCosine: return "cosine";
  }
  return "unknown";
}

absl::Status LrSchedule::Validate() const {
  if (!(std::isfinite(lr) && lr >= 0.0f && std::isfinite(min_lr) &&
        min_lr >= 0.0f)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "learning rates must be finite and >= 0, got lr ", lr, ", min_lr ",
        min_lr));
  }
  if (warmup_steps < 0 || total_steps < 0) {
    return absl::InvalidArgumentError("step counts must be >= 0");
  }
  if (kind != LrScheduleKind::kConstant &&
      (total_steps == 0 || warmup_steps > total_steps)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the ", LrScheduleKindName(kind),
        " schedule needs total_steps > 0 and warmup_steps <= total_steps, got ",
        warmup_steps, " and ", total_steps));
  }
  return absl::OkStatus();
}

float LrSchedule::At(int64_t step) const {
  if (kind == LrScheduleKind::kConstant) return lr;
  if (step < warmup_steps) {
    return static_cast<float>(static_cast<double>(lr) * (step + 1) /
                              (warmup_steps + 1));
  }
  if (step >= total_steps) return min_lr;
  const double t = static_cast<double>(step - warmup_steps) /
                   static_cast<double>(total_steps - warmup_steps);
  const double span = static_cast<double>(lr) - min_lr;
  const double f = kind == LrScheduleKind::kLinear
                       ? 1.0 - t
                       : 0.5 * (1.0 + std::cos(3.14159265358979323846 * t));
  return static_cast<float>(min_lr + span * f);
}

}  // namespace qat
