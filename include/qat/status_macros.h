// Early-return helpers for absl::Status and absl::StatusOr.
//
// Debian's abseil (20220623) ships neither ABSL_RETURN_IF_ERROR nor
// ABSL_ASSIGN_OR_RETURN, so libqat defines its own, once, here.
#ifndef QAT_STATUS_MACROS_H_
#define QAT_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Evaluates `expr` (an absl::Status) and returns it from the enclosing
// function if it is not OK.
#define QAT_RETURN_IF_ERROR(expr)                          \
  do {                                                     \
    ::absl::Status qat_status_internal_ = (expr);          \
    if (!qat_status_internal_.ok()) return qat_status_internal_; \
  } while (false)

#define QAT_STATUS_MACROS_CONCAT_INNER_(a, b) a##b
#define QAT_STATUS_MACROS_CONCAT_(a, b) QAT_STATUS_MACROS_CONCAT_INNER_(a, b)

// Evaluates `rexpr` (an absl::StatusOr<T>). On error returns its status from
// the enclosing function; otherwise moves the value into `lhs`, which may be a
// declaration: QAT_ASSIGN_OR_RETURN(auto model, LoadModel(path));
#define QAT_ASSIGN_OR_RETURN(lhs, rexpr)                                      \
  QAT_ASSIGN_OR_RETURN_IMPL_(                                                 \
      QAT_STATUS_MACROS_CONCAT_(qat_statusor_internal_, __LINE__), lhs, rexpr)

#define QAT_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                               \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // QAT_STATUS_MACROS_H_
