#include "kernels/float_math.h"

#include "kernels/target_clones.h"

namespace qat {
namespace kernels {
namespace {

// The cloned loops have internal linkage, behind plain wrappers (GCC gives a
// clone's resolver default visibility, which would export it).  No
// __restrict: y may be x, and GCC checks the overlap at run time.
QAT_TARGET_CLONES void ExpFloatsClones(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = ExpFloat(x[i]);
}

QAT_TARGET_CLONES void ErfFloatsClones(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = ErfFloat(x[i]);
}

}  // namespace

void ExpFloats(const float* x, float* y, int64_t n) { ExpFloatsClones(x, y, n); }
void ErfFloats(const float* x, float* y, int64_t n) { ErfFloatsClones(x, y, n); }

}  // namespace kernels
}  // namespace qat
