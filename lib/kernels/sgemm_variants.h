// Single-precision GEMM kernel variants for ops/gemm.h: one function per
// instruction set that computes one tile of C = op(A) * op(B).  Internal to
// libqat; the tests and benchmarks include it to run every variant.
//
// Every variant computes each element of C as one chain of fused
// multiply-adds in increasing k, starting from zero:
//
//   c = 0;  for p in 0..k-1:  c = fma(op(A)[i][p], op(B)[p][j], c)
//
// exactly as SgemmReference() below does, so every variant agrees with the
// reference, and with every other variant, bit for bit, whatever the tile
// shape, the blocking or the thread count.  The reference itself is the
// "scalar" variant, the fallback on CPUs without FMA and in builds without
// the SIMD variants, so float results are the same bits on every CPU.
#ifndef QAT_LIB_KERNELS_SGEMM_VARIANTS_H_
#define QAT_LIB_KERNELS_SGEMM_VARIANTS_H_

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/activation.h"
#include "kernels/depthwise_conv.h"
#include "kernels/direct_conv.h"
#include "kernels/isa.h"
#include "kernels/small_output_conv.h"

namespace qat {
namespace kernels {

// Depth of one packed block of A and B; tiles are at most kSgemmMaxRows x
// kSgemmMaxCols, so the packing buffers below hold any tile.
inline constexpr int64_t kSgemmDepth = 256;
inline constexpr int64_t kSgemmMaxRows = 64;
inline constexpr int64_t kSgemmMaxCols = 128;
// Packed panels are padded to whole micro-tiles (at most 16 rows and 32
// columns in any variant).
inline constexpr int64_t kSgemmPackAFloats = (kSgemmMaxRows + 16) * kSgemmDepth;
inline constexpr int64_t kSgemmPackBFloats = (kSgemmMaxCols + 32) * kSgemmDepth;

// What a tile does to each element of C once its sum is complete:
// c = activation(c + row_bias[i]) (no addition without row_bias), as
// ApplyActivation does, so a fused bias and Relu or Clip give the bits of
// separate passes.  row_bias is indexed by the tile's own rows.
struct SgemmEpilogue {
  const float* row_bias = nullptr;
  ActivationKind activation = ActivationKind::kNone;
  float lo = 0.0f, hi = 0.0f;  // Clip's bounds

  bool empty() const { return row_bias == nullptr && activation == ActivationKind::kNone; }
  // The epilogue's tile of C, rows x cols at c (row i at c + i * ldc).
  QAT_ALWAYS_INLINE void Apply(float* c, int64_t ldc, int64_t rows, int64_t cols) const {
    for (int64_t i = 0; i < rows; ++i) {
      ApplyActivation(activation, lo, hi, c + i * ldc, cols, row_bias != nullptr,
                      row_bias != nullptr ? row_bias[i] : 0.0f);
    }
  }
};

// One tile: C[i][j] for i < rows, j < cols, with op(A)[i][p] at
// a[i * a_row + p * a_col] and op(B)[p][j] at b[p * b_row + j * b_col], so
// transposed operands are just other strides.  pack_a and pack_b are
// scratch of kSgemmPackAFloats and kSgemmPackBFloats floats.  packed_b, when
// not null, is op(B) for this tile as the variant's pack_b wrote it; the
// tile then reads it instead of packing.  The tile applies `epilogue` to C
// as it finishes each block of it, while the block is in cache.
struct SgemmTile {
  int64_t rows, cols, depth;
  const float* a;
  int64_t a_row, a_col;
  const float* b;
  int64_t b_row, b_col;
  float* c;
  int64_t ldc;
  float* pack_a;
  float* pack_b;
  const float* packed_b;
  SgemmEpilogue epilogue;
};

struct SgemmKernels {
  const char* name;
  Isa isa;
  void (*tile)(const SgemmTile& tile);
  // Packs the tile's whole op(B) into out, packed_floats(cols, depth) long.
  void (*pack_b)(const SgemmTile& tile, float* out);
  int64_t (*packed_floats)(int64_t cols, int64_t depth);
  // The direct convolution (kernels/direct_conv.h), for the shapes that
  // direct_conv_fits accepts.
  void (*direct_conv)(const DirectConv& conv);
  bool (*direct_conv_fits)(const DirectConv& conv);
  // One plane of a depthwise convolution and of its adjoint
  // (kernels/depthwise_conv.h), any kernel, stride, dilation and padding.
  void (*depthwise_conv)(const DepthwiseConv& conv);
  void (*depthwise_conv_transpose)(const DepthwiseConv& conv);
  // The small-output convolution (kernels/small_output_conv.h), for the
  // shapes that small_output_conv_fits accepts.
  void (*small_output_conv)(const SmallOutputConv& conv);
  bool (*small_output_conv_fits)(const SmallOutputConv& conv);
};

// The manifest, slowest first: X(name) for every variant compiled into this
// build; QAT_HAVE_AVX2_KERNELS comes from the build (QAT_ENABLE_AVX2).
#if defined(QAT_HAVE_AVX2_KERNELS)
#define QAT_SGEMM_SIMD_VARIANTS_(X) X(avx2_fma) X(avx512)
#else
#define QAT_SGEMM_SIMD_VARIANTS_(X)
#endif
#define QAT_SGEMM_VARIANTS(X) X(scalar) QAT_SGEMM_SIMD_VARIANTS_(X)

#define QAT_DECLARE_SGEMM_VARIANT_(name) extern const SgemmKernels kSgemm_##name;
QAT_SGEMM_VARIANTS(QAT_DECLARE_SGEMM_VARIANT_)
#undef QAT_DECLARE_SGEMM_VARIANT_

// Every variant in the manifest that this CPU supports, slowest first (the
// scalar one always).
std::vector<const SgemmKernels*> SupportedSgemmVariants();

// The variant ops/gemm.h and Conv use: the last supported one, unless the
// environment names another supported one, in QAT_GEMM_VARIANT or else in
// QAT_KERNEL_VARIANT (so QAT_KERNEL_VARIANT=scalar puts every kernel family
// on its reference).  Read once per process.
const SgemmKernels& SelectedSgemmKernels();

// The definition above, one tile at a time.
inline void SgemmReference(const SgemmTile& t) {
  for (int64_t i = 0; i < t.rows; ++i) {
    for (int64_t j = 0; j < t.cols; ++j) {
      float sum = 0.0f;
      for (int64_t p = 0; p < t.depth; ++p) {
        sum = std::fma(t.a[i * t.a_row + p * t.a_col], t.b[p * t.b_row + j * t.b_col], sum);
      }
      t.c[i * t.ldc + j] = sum;
    }
  }
}

}  // namespace kernels
}  // namespace qat

#endif  // QAT_LIB_KERNELS_SGEMM_VARIANTS_H_
