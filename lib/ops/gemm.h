// Matrix multiplication for MatMul, Gemm and Conv (im2col):
//
//   C[m x n] = op(A) * op(B),  op(X) = X or X^T,  all row-major.
//
// Gemm() uses Eigen on tiles of C that run as thread-pool tasks.
// GemmReference() is the plain triple loop that the tests compare it with.
#ifndef QAT_LIB_OPS_GEMM_H_
#define QAT_LIB_OPS_GEMM_H_

#include <algorithm>
#include <cstdint>

#include <Eigen/Core>

#include "qat/thread_pool.h"

namespace qat {
namespace exec {

struct GemmShape {
  int64_t m = 0, k = 0, n = 0;
  bool trans_a = false;  // A is stored k x m
  bool trans_b = false;  // B is stored n x k
};

// C is cut into tiles of at most kRowsPerTask x kColsPerTask; each tile is
// one task and one Eigen product.  Tile sizes depend on nothing but these
// constants, so the summation order (and so every bit of C) is the same for
// every thread count.
inline constexpr int64_t kRowsPerTask = 64;
inline constexpr int64_t kColsPerTask = 128;

template <typename T>
void Gemm(ThreadPool* pool, const GemmShape& s, const T* a, const T* b, T* c) {
  using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Strided = Eigen::OuterStride<>;
  using ConstMap = Eigen::Map<const Matrix, 0, Strided>;
  if (s.m == 0 || s.n == 0) return;
  if (s.k == 0) {
    std::fill(c, c + s.m * s.n, T(0));
    return;
  }
  const int64_t row_tiles = (s.m + kRowsPerTask - 1) / kRowsPerTask;
  const int64_t col_tiles = (s.n + kColsPerTask - 1) / kColsPerTask;
  ParallelFor(pool, row_tiles * col_tiles, [&](int64_t task) {
    const int64_t row = (task / col_tiles) * kRowsPerTask;
    const int64_t col = (task % col_tiles) * kColsPerTask;
    const int64_t rows = std::min(kRowsPerTask, s.m - row);
    const int64_t cols = std::min(kColsPerTask, s.n - col);
    Eigen::Map<Matrix, 0, Strided> c_tile(c + row * s.n + col, rows, cols, Strided(s.n));
    // op(A) rows [row, row + rows) and op(B) columns [col, col + cols), as
    // strided views of the stored matrices.
    const ConstMap a_stored = s.trans_a ? ConstMap(a + row, s.k, rows, Strided(s.m))
                                        : ConstMap(a + row * s.k, rows, s.k, Strided(s.k));
    const ConstMap b_stored = s.trans_b ? ConstMap(b + col * s.k, cols, s.k, Strided(s.k))
                                        : ConstMap(b + col, s.k, cols, Strided(s.n));
    if (s.trans_a) {
      if (s.trans_b) c_tile.noalias() = a_stored.transpose() * b_stored.transpose();
      else c_tile.noalias() = a_stored.transpose() * b_stored;
    } else {
      if (s.trans_b) c_tile.noalias() = a_stored * b_stored.transpose();
      else c_tile.noalias() = a_stored * b_stored;
    }
  });
}

template <typename T>
void GemmReference(const GemmShape& s, const T* a, const T* b, T* c) {
  for (int64_t i = 0; i < s.m; ++i) {
    for (int64_t j = 0; j < s.n; ++j) {
      T sum = 0;
      for (int64_t p = 0; p < s.k; ++p) {
        const T av = s.trans_a ? a[p * s.m + i] : a[i * s.k + p];
        const T bv = s.trans_b ? b[j * s.k + p] : b[p * s.n + j];
        sum += av * bv;
      }
      c[i * s.n + j] = sum;
    }
  }
}

}  // namespace exec
}  // namespace qat

#endif  // QAT_LIB_OPS_GEMM_H_
