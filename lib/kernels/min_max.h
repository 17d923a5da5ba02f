// Minimum and maximum of float data, and a finiteness test: the loops that
// observers and calibration run over every activation, vectorized.
#ifndef QAT_LIB_KERNELS_MIN_MAX_H_
#define QAT_LIB_KERNELS_MIN_MAX_H_

#include <cstdint>

namespace qat {
namespace kernels {

// The smallest and largest of p[0, n), n >= 1, in the same pass as a
// finiteness test: returns false when a value is NaN or infinite (the
// extremes are then meaningless).  The values are exact; when the extreme
// is zero, its sign is whichever zero the fixed lane order meets first
// (deterministic, but not necessarily the first in memory).
bool MinMax(const float* p, int64_t n, float* min, float* max);

// Per column of a row-major [rows, columns] matrix (rows >= 1): min[c] and
// max[c] of p[r * columns + c] over r, taken in row order, so that a zero
// extreme keeps the sign of the first in memory (as std::min / std::max over
// the column would).  Returns false when a value is NaN or infinite.
bool MinMaxColumns(const float* p, int64_t rows, int64_t columns, float* min, float* max);

// True when no value in p[0, n) is NaN or infinite.
bool AllFinite(const float* p, int64_t n);

}  // namespace kernels
}  // namespace qat

#endif  // QAT_LIB_KERNELS_MIN_MAX_H_
