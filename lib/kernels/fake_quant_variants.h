// The FakeQuant kernel variants: one table of function pointers per
// instruction set, listed once in QAT_FAKE_QUANT_VARIANTS.  Internal to
// libqat; the tests and benchmarks include it to run every variant.
#ifndef QAT_LIB_KERNELS_FAKE_QUANT_VARIANTS_H_
#define QAT_LIB_KERNELS_FAKE_QUANT_VARIANTS_H_

#include <cstdint>
#include <vector>

#include "kernels/isa.h"
#include "qat/kernels/fake_quant_reference.h"

namespace qat {
namespace kernels {

// The accumulators of `columns` channels for lsq_accumulate_rows: four
// arrays of kLsqLanes x columns floats (lane l of column c at l * columns +
// c), in LsqLanes' order: scale, outside, block_scale, block_outside.
struct LsqColumns {
  static int64_t Floats(int64_t columns) { return 4 * kLsqLanes * columns; }
  // Column c's accumulators as an LsqLanes.
  static LsqLanes Lanes(const float* acc, int64_t columns, int64_t c) {
    LsqLanes l;
    const int64_t plane = kLsqLanes * columns;
    for (int k = 0; k < kLsqLanes; ++k) {
      l.scale[k] = acc[k * columns + c];
      l.outside[k] = acc[plane + k * columns + c];
      l.block_scale[k] = acc[2 * plane + k * columns + c];
      l.block_outside[k] = acc[3 * plane + k * columns + c];
    }
    return l;
  }
};

struct FakeQuantKernels {
  const char* name;
  Isa isa;
  // y = FakeQuant(x) with one grid; mask may be null.
  void (*forward)(int64_t n, const float* x, float* y, bool* mask,
                  const FakeQuantGrid& grid);
  // Element i uses scales[i] and zero_points[i]: a row of a per-channel
  // tensor whose channels are its last axis.
  void (*forward_row)(int64_t n, const float* x, float* y, bool* mask,
                      const float* scales, const float* zero_points,
                      float quant_min, float quant_max);
  // dx = mask ? dy : 0.
  void (*ste_backward)(int64_t n, const float* dy, const bool* mask,
                       float* dx);
  // LSQ terms of n consecutive elements of one chunk, the first being term
  // `first` of the chunk (first + n <= kLsqChunk); writes dx when it is not
  // null.
  void (*lsq_accumulate)(int64_t n, const float* x, const float* dy,
                         float* dx, const FakeQuantGrid& grid, int64_t first,
                         LsqLanes* lanes);
  // LSQ terms of `rows` rows (rows <= kLsqChunk) of `columns` channels that
  // are the last axis of a tensor: element (r, c), at x[r * stride + c], is
  // term r of channel c's chunk, on the grid scales[c], zero_points[c].
  // `acc` holds the lanes of every column, lane-major (LsqColumns); it starts
  // from zeros and receives the chunk's accumulators, not yet folded.
  void (*lsq_accumulate_rows)(int64_t rows, int64_t columns, int64_t stride,
                              const float* x, const float* dy, float* dx,
                              const float* scales, const float* zero_points,
                              float quant_min, float quant_max, float* acc);
};

// The manifest.  X(name) for every variant compiled into this build;
// QAT_HAVE_X86_KERNELS and QAT_HAVE_AVX2_KERNELS come from the build.
#if defined(QAT_HAVE_X86_KERNELS)
#define QAT_X86_VARIANT_(X) X(sse2)
#else
#define QAT_X86_VARIANT_(X)
#endif
#if defined(QAT_HAVE_AVX2_KERNELS)
#define QAT_AVX2_VARIANT_(X) X(avx2)
#else
#define QAT_AVX2_VARIANT_(X)
#endif
#if defined(QAT_HAVE_AVX2_KERNELS)
#define QAT_AVX512_VARIANT_(X) X(avx512)
#else
#define QAT_AVX512_VARIANT_(X)
#endif
#define QAT_FAKE_QUANT_VARIANTS(X) \
  X(scalar) QAT_X86_VARIANT_(X) QAT_AVX2_VARIANT_(X) QAT_AVX512_VARIANT_(X)

#define QAT_DECLARE_FAKE_QUANT_VARIANT_(name) \
  extern const FakeQuantKernels kFakeQuant_##name;
QAT_FAKE_QUANT_VARIANTS(QAT_DECLARE_FAKE_QUANT_VARIANT_)
#undef QAT_DECLARE_FAKE_QUANT_VARIANT_

// Every variant in the manifest that this CPU supports, slowest first.
std::vector<const FakeQuantKernels*> SupportedFakeQuantVariants();

// The variant the public API uses: the last supported one, unless the
// environment variable QAT_KERNEL_VARIANT names another supported variant.
const FakeQuantKernels& SelectedFakeQuantKernels();

}  // namespace kernels
}  // namespace qat

#endif  // QAT_LIB_KERNELS_FAKE_QUANT_VARIANTS_H_
