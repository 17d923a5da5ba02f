// What the element-indexing ops share: ScatterElements (training_ops.cc),
// and GatherElements, ScatterND and Scatter (indexing.cc).
//
// The reductions are ScatterElements' and ScatterND's `reduction`
// attribute; both apply updates in index order on one thread, so that
// repeated indices give the same result on every run.
#ifndef QAT_LIB_EXEC_OPS_SCATTER_H_
#define QAT_LIB_EXEC_OPS_SCATTER_H_

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "qat/tensor.h"

namespace qat {
namespace exec {

enum class ScatterReduction { kNone, kAdd, kMul, kMax, kMin };

inline absl::StatusOr<ScatterReduction> ParseScatterReduction(const std::string& name) {
  if (name == "none") return ScatterReduction::kNone;
  if (name == "add") return ScatterReduction::kAdd;
  if (name == "mul") return ScatterReduction::kMul;
  if (name == "max") return ScatterReduction::kMax;
  if (name == "min") return ScatterReduction::kMin;
  return absl::InvalidArgumentError(absl::StrCat("unknown reduction '", name, "'"));
}

template <typename T>
void ScatterOne(ScatterReduction reduction, T update, T& target) {
  switch (reduction) {
    case ScatterReduction::kNone: target = update; break;
    case ScatterReduction::kAdd: target = static_cast<T>(target + update); break;
    case ScatterReduction::kMul: target = static_cast<T>(target * update); break;
    case ScatterReduction::kMax: target = std::max(target, update); break;
    case ScatterReduction::kMin: target = std::min(target, update); break;
  }
}

// ScatterOne over `n` consecutive targets (ScatterND's slices), with the
// reduction chosen once per slice rather than once per element.
template <typename T>
void ScatterRun(ScatterReduction reduction, const T* update, int64_t n, T* target) {
  switch (reduction) {
    case ScatterReduction::kNone: std::copy(update, update + n, target); break;
    case ScatterReduction::kAdd:
      for (int64_t e = 0; e < n; ++e) target[e] = static_cast<T>(target[e] + update[e]);
      break;
    default:
      for (int64_t e = 0; e < n; ++e) ScatterOne(reduction, update[e], target[e]);
      break;
  }
}

// Checks indices against data for GatherElements and ScatterElements: the
// same rank, and indices no larger than data off the axis.
inline absl::Status CheckElementIndexShapes(const Tensor& data, const Tensor& indices,
                                            int64_t axis) {
  if (indices.rank() != data.rank()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data ", ShapeToString(data.shape()), " and indices ", ShapeToString(indices.shape()),
        " must have one rank"));
  }
  for (int64_t d = 0; d < data.rank(); ++d) {
    if (d != axis && indices.dim(d) > data.dim(d)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "indices ", ShapeToString(indices.shape()), " are larger than data ",
          ShapeToString(data.shape()), " on axis ", d));
    }
  }
  return absl::OkStatus();
}

}  // namespace exec
}  // namespace qat

#endif  // QAT_LIB_EXEC_OPS_SCATTER_H_
