// Learning-rate schedules, as a pure function of the step.
//
//   constant   lr
//   linear     warmup from 0 to lr over warmup_steps, then linear decay to
//              min_lr at total_steps
//   cosine     the same warmup, then min_lr + (lr - min_lr) (1 + cos(pi t)) / 2
//              with t going from 0 to 1 between warmup_steps and total_steps
// Steps count from 0; past total_steps the rate stays at min_lr.
#ifndef QAT_LR_SCHEDULE_H_
#define QAT_LR_SCHEDULE_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "qat/api.h"

namespace qat {

enum class LrScheduleKind { kConstant, kLinear, kCosine };

// "constant", "linear", "cosine".
QAT_API absl::StatusOr<LrScheduleKind> ParseLrScheduleKind(absl::string_view name);
QAT_API const char* LrScheduleKindName(LrScheduleKind kind);

struct LrSchedule {
  LrScheduleKind kind = LrScheduleKind::kConstant;
  float lr = 1e-3f;
  float min_lr = 0.0f;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;  // needed by linear and cosine

  // InvalidArgument for a negative or non-finite rate, warmup longer than
  // the run, or a decaying schedule without total_steps.
  QAT_API absl::Status Validate() const;
  QAT_API float At(int64_t step) const;
};

}  // namespace qat

#endif  // QAT_LR_SCHEDULE_H_
