#include "kernels/min_max.h"

#include <cfloat>
#include <cmath>

#include "kernels/target_clones.h"

namespace qat {
namespace kernels {
namespace {

// Independent lanes, so that the comparisons do not wait on each other and
// the loops vectorize; min and max are exact, so the lanes change no value.
constexpr int kLanes = 32;

// The cloned functions have internal linkage, behind plain wrappers: GCC
// gives a clone's resolver default visibility, which would export it.
QAT_TARGET_CLONES bool MinMaxClones(const float* __restrict p, int64_t n, float* min,
                                    float* max) {
  float lo[kLanes], hi[kLanes];
  int bad[kLanes] = {};
  for (int l = 0; l < kLanes; ++l) lo[l] = hi[l] = p[0];
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const float v = p[i + l];
      lo[l] = v < lo[l] ? v : lo[l];
      hi[l] = hi[l] < v ? v : hi[l];
      bad[l] |= !(std::fabs(v) <= FLT_MAX);
    }
  }
  for (; i < n; ++i) {
    lo[0] = p[i] < lo[0] ? p[i] : lo[0];
    hi[0] = hi[0] < p[i] ? p[i] : hi[0];
    bad[0] |= !(std::fabs(p[i]) <= FLT_MAX);
  }
  float a = lo[0], b = hi[0];
  int any = bad[0];
  for (int l = 1; l < kLanes; ++l) {
    a = lo[l] < a ? lo[l] : a;
    b = b < hi[l] ? hi[l] : b;
    any |= bad[l];
  }
  *min = a;
  *max = b;
  return any == 0;
}

QAT_TARGET_CLONES bool MinMaxColumnsClones(const float* __restrict p, int64_t rows,
                                           int64_t columns, float* __restrict min,
                                           float* __restrict max) {
  int bad = 0;
  for (int64_t c = 0; c < columns; ++c) {
    min[c] = max[c] = p[c];
    bad |= !(std::fabs(p[c]) <= FLT_MAX);
  }
  for (int64_t r = 1; r < rows; ++r) {
    const float* row = p + r * columns;
    for (int64_t c = 0; c < columns; ++c) {
      const float v = row[c];
      min[c] = v < min[c] ? v : min[c];
      max[c] = max[c] < v ? v : max[c];
      bad |= !(std::fabs(v) <= FLT_MAX);
    }
  }
  return bad == 0;
}

QAT_TARGET_CLONES bool AllFiniteClones(const float* __restrict p, int64_t n) {
  int bad[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) bad[l] |= !(std::fabs(p[i + l]) <= FLT_MAX);
  }
  for (; i < n; ++i) bad[0] |= !(std::fabs(p[i]) <= FLT_MAX);
  int any = 0;
  for (int l = 0; l < kLanes; ++l) any |= bad[l];
  return any == 0;
}

}  // namespace

bool MinMax(const float* p, int64_t n, float* min, float* max) {
  return MinMaxClones(p, n, min, max);
}

bool MinMaxColumns(const float* p, int64_t rows, int64_t columns, float* min, float* max) {
  return MinMaxColumnsClones(p, rows, columns, min, max);
}

bool AllFinite(const float* p, int64_t n) { return AllFiniteClones(p, n); }

}  // namespace kernels
}  // namespace qat
