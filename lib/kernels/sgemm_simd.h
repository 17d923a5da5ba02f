// The SIMD single-precision GEMM, written once over an instruction-set traits
// class V and instantiated by sgemm_avx2.cc and sgemm_avx512.cc.
//
// The classic packed scheme: for each block of kSgemmDepth values of k, the
// tile's columns of op(B) are copied into panels of kCols columns (unless
// the caller packed them ahead, as for constant weights) and, for a
// transposed A, its rows of op(A) into panels of kRows rows, both laid out in
// the order the micro-kernel reads them; a row-major A is read in place.  The
// micro-kernel keeps a kRows x kCols block of C in registers.  A block after the first starts from the partial sums in
// C, so every element is still one chain of fused multiply-adds in
// increasing k (see sgemm_variants.h).
//
// V provides F (V::kWidth floats), Zero, Load, Store, Set1, Fma, and for the
// epilogue Add, Max and Min, and for
// transposed operands I (V::kWidth int32 indices), Indices(first, stride)
// = {first * stride, (first + 1) * stride, ...} and Gather(base, I).  This
// header must only be included with V in an anonymous namespace of a
// translation unit compiled for V's instruction set, and defines nothing
// but templates over V, so no code built for one instruction set can be
// linked into a caller built for another.
#ifndef QAT_LIB_KERNELS_SGEMM_SIMD_H_
#define QAT_LIB_KERNELS_SGEMM_SIMD_H_

#include <cstdint>

#include "kernels/activation_simd.h"
#include "kernels/sgemm_variants.h"

namespace qat {
namespace kernels {
namespace simd {

// 0, 1, ..., n - 1 as a type, without <utility> (see above: templates only).
template <int... kIndex>
struct Sequence {};
template <int kN, int... kIndex>
struct MakeSequenceImpl : MakeSequenceImpl<kN - 1, kN - 1, kIndex...> {};
template <int... kIndex>
struct MakeSequenceImpl<0, kIndex...> {
  using Type = Sequence<kIndex...>;
};

template <class V, int kRowsT, int kVectors>
struct Sgemm {
  template <int kN>
  using MakeSequenceT = typename MakeSequenceImpl<kN>::Type;
  template <int kN>
  static MakeSequenceT<kN> MakeSequence() { return {}; }

  using F = typename V::F;
  static constexpr int64_t kRows = kRowsT;
  static constexpr int64_t kCols = kVectors * V::kWidth;
  static_assert(kRows <= 16 && kCols <= 32, "the packing buffers assume this");

  // Gather indices are 32-bit: lane j reads j * stride.
  static constexpr int64_t kMaxGatherStride = 0x7fffffff / kCols;

  static int64_t Min(int64_t a, int64_t b) { return a < b ? a : b; }

  // pack[panel][p][i] = op(A)[i0 + i][p0 + p], zero past the tile's rows.
  static void PackA(const SgemmTile& t, int64_t p0, int64_t depth) {
    float* out = t.pack_a;
    for (int64_t i0 = 0; i0 < t.rows; i0 += kRows) {
      const int64_t rows = Min(kRows, t.rows - i0);
      // Along p outside: a transposed A (the only one packed) holds a
      // panel's rows side by side, so each p reads one short contiguous run.
      const float* src = t.a + i0 * t.a_row + p0 * t.a_col;
      for (int64_t p = 0; p < depth; ++p) {
        for (int64_t i = 0; i < rows; ++i) out[p * kRows + i] = src[p * t.a_col + i * t.a_row];
        for (int64_t i = rows; i < kRows; ++i) out[p * kRows + i] = 0.0f;
      }
      out += depth * kRows;
    }
  }

  // Columns of a tile rounded up to whole panels.
  static int64_t PaddedCols(int64_t cols) { return (cols + kCols - 1) / kCols * kCols; }

  // pack[panel][p][j] = op(B)[p0 + p][j0 + j], zero past the tile's columns.
  // The loop runs along whichever of p and j is contiguous in memory.
  static void PackB(const SgemmTile& t, int64_t p0, int64_t depth, float* out) {
    for (int64_t j0 = 0; j0 < t.cols; j0 += kCols) {
      const int64_t cols = Min(kCols, t.cols - j0);
      const float* src = t.b + p0 * t.b_row + j0 * t.b_col;
      if (t.b_col == 1 && cols == kCols) {
        for (int64_t p = 0; p < depth; ++p) {
          for (int v = 0; v < kVectors; ++v) {
            V::Store(out + p * kCols + v * V::kWidth, V::Load(src + p * t.b_row + v * V::kWidth));
          }
        }
      } else if (t.b_col == 1) {
        for (int64_t p = 0; p < depth; ++p) {
          for (int64_t j = 0; j < cols; ++j) out[p * kCols + j] = src[p * t.b_row + j];
          for (int64_t j = cols; j < kCols; ++j) out[p * kCols + j] = 0.0f;
        }
      } else if (cols == kCols && t.b_col <= kMaxGatherStride) {
        // A transposed B: one gather per vector of the panel's row p.
        typename V::I index[kVectors];
        for (int v = 0; v < kVectors; ++v) index[v] = V::Indices(v * V::kWidth, t.b_col);
        for (int64_t p = 0; p < depth; ++p) {
          for (int v = 0; v < kVectors; ++v) {
            V::Store(out + p * kCols + v * V::kWidth, V::Gather(src + p * t.b_row, index[v]));
          }
        }
      } else {
        for (int64_t j = 0; j < cols; ++j) {
          for (int64_t p = 0; p < depth; ++p) out[p * kCols + j] = src[p * t.b_row + j * t.b_col];
        }
        for (int64_t j = cols; j < kCols; ++j) {
          for (int64_t p = 0; p < depth; ++p) out[p * kCols + j] = 0.0f;
        }
      }
      out += depth * kCols;
    }
  }

  // c[i * ldc + j] (+)= sum over p of a[i * a_row + p * a_col] * b[p * kCols + j]
  // for i < kUsed (a tile's last rows may fill only part of a panel).  A is
  // either packed (a_row 1, a_col kRows: kPacked, strides known here) or read
  // in place from a row-major op(A) (a_col 1).
  // The epilogue on a micro-tile's sums in registers (row_bias from the
  // micro-tile's first row), with ApplyActivation's bits.
  template <int kUsed>
  static void Epilogue(const SgemmEpilogue& e, const float* row_bias, F (&acc)[kUsed][kVectors]) {
    const VectorActivation<V> activation(e.activation, e.lo, e.hi);
#pragma GCC unroll 16
    for (int i = 0; i < kUsed; ++i) {
      const F bias = V::Set1(row_bias != nullptr ? row_bias[i] : 0.0f);
#pragma GCC unroll 4
      for (int v = 0; v < kVectors; ++v) {
        acc[i][v] = activation(row_bias != nullptr ? V::Add(acc[i][v], bias) : acc[i][v]);
      }
    }
  }

  // With `epilogue` not null (the last block of depth), the sums go through
  // it before they are stored.
  template <int kUsed, bool kPacked>
  static void MicroKernel(int64_t depth, const float* a, int64_t a_row, const float* b,
                          float* c, int64_t ldc, bool accumulate, const SgemmEpilogue* epilogue,
                          const float* row_bias) {
    if (kPacked) a_row = 1;
    const int64_t a_col = kPacked ? kRows : 1;
    F acc[kUsed][kVectors];
#pragma GCC unroll 16
    for (int i = 0; i < kUsed; ++i) {
#pragma GCC unroll 4
      for (int v = 0; v < kVectors; ++v) {
        acc[i][v] = accumulate ? V::Load(c + i * ldc + v * V::kWidth) : V::Zero();
      }
    }
    for (int64_t p = 0; p < depth; ++p) {
      F bv[kVectors];
#pragma GCC unroll 4
      for (int v = 0; v < kVectors; ++v) bv[v] = V::Load(b + p * kCols + v * V::kWidth);
#pragma GCC unroll 16
      for (int i = 0; i < kUsed; ++i) {
        const F av = V::Set1(a[i * a_row + p * a_col]);
#pragma GCC unroll 4
        for (int v = 0; v < kVectors; ++v) acc[i][v] = V::Fma(av, bv[v], acc[i][v]);
      }
    }
    if (epilogue != nullptr) Epilogue<kUsed>(*epilogue, row_bias, acc);
#pragma GCC unroll 16
    for (int i = 0; i < kUsed; ++i) {
#pragma GCC unroll 4
      for (int v = 0; v < kVectors; ++v) V::Store(c + i * ldc + v * V::kWidth, acc[i][v]);
    }
  }

  using MicroKernelFn = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t,
                                 bool, const SgemmEpilogue*, const float*);

  // The micro-kernel for `rows` rows (1 to kRows).
  template <bool kPacked, int... kIndex>
  static MicroKernelFn ForRows(int rows, Sequence<kIndex...>) {
    static constexpr MicroKernelFn table[] = {&MicroKernel<kIndex + 1, kPacked>...};
    return table[rows - 1];
  }
  static MicroKernelFn ForRows(int rows, bool packed) {
    return packed ? ForRows<true>(rows, MakeSequence<kRows>())
                  : ForRows<false>(rows, MakeSequence<kRows>());
  }

  // t's whole op(B), every depth block, as Tile() reads it: block p0 starts
  // at out + p0 * PaddedCols(t.cols).
  static void PackWholeB(const SgemmTile& t, float* out) {
    for (int64_t p0 = 0; p0 < t.depth; p0 += kSgemmDepth) {
      PackB(t, p0, Min(kSgemmDepth, t.depth - p0), out + p0 * PaddedCols(t.cols));
    }
  }

  static void Tile(const SgemmTile& t) {
    const bool pack_a = t.a_col != 1;  // a transposed A; a row-major one is read in place
    for (int64_t p0 = 0; p0 < t.depth; p0 += kSgemmDepth) {
      const int64_t depth = Min(kSgemmDepth, t.depth - p0);
      const bool accumulate = p0 > 0;
      // The last block of depth completes C: each micro-tile's sums go
      // through the epilogue in registers, and C is written once.
      const bool last = p0 + depth == t.depth && !t.epilogue.empty();
      if (pack_a) PackA(t, p0, depth);
      const float* packed_b = t.packed_b != nullptr ? t.packed_b + p0 * PaddedCols(t.cols)
                                                    : t.pack_b;
      if (t.packed_b == nullptr) PackB(t, p0, depth, t.pack_b);
      for (int64_t j0 = 0; j0 < t.cols; j0 += kCols) {
        const int64_t cols = Min(kCols, t.cols - j0);
        const float* b = packed_b + (j0 / kCols) * depth * kCols;
        for (int64_t i0 = 0; i0 < t.rows; i0 += kRows) {
          const int64_t rows = Min(kRows, t.rows - i0);
          const float* a = pack_a ? t.pack_a + (i0 / kRows) * depth * kRows
                                  : t.a + i0 * t.a_row + p0;
          float* c = t.c + i0 * t.ldc + j0;
          const MicroKernelFn kernel = ForRows(static_cast<int>(rows), pack_a);
          const SgemmEpilogue* epilogue = last ? &t.epilogue : nullptr;
          const float* row_bias =
              last && t.epilogue.row_bias != nullptr ? t.epilogue.row_bias + i0 : nullptr;
          if (cols == kCols) {
            kernel(depth, a, t.a_row, b, c, t.ldc, accumulate, epilogue, row_bias);
            continue;
          }
          // The last columns go through a full-width copy.
          alignas(64) float block[kRows * kCols];
          if (accumulate) {
            for (int64_t i = 0; i < rows; ++i) {
              for (int64_t j = 0; j < cols; ++j) block[i * kCols + j] = c[i * t.ldc + j];
            }
          }
          kernel(depth, a, t.a_row, b, block, kCols, accumulate, epilogue, row_bias);
          for (int64_t i = 0; i < rows; ++i) {
            for (int64_t j = 0; j < cols; ++j) c[i * t.ldc + j] = block[i * kCols + j];
          }
        }
      }
    }
  }
};

}  // namespace simd
}  // namespace kernels
}  // namespace qat

#endif  // QAT_LIB_KERNELS_SGEMM_SIMD_H_
