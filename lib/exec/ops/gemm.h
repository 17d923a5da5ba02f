// Matrix multiplication for MatMul, Gemm and Conv (im2col):
//
//   C[m x n] = op(A) * op(B),  op(X) = X or X^T,  all row-major.
//
// Gemm() cuts C into tiles that run as thread-pool tasks.  A float tile goes
// to the kernel variant for this CPU (kernels/sgemm_variants.h: packed SIMD
// with fused multiply-adds, or the scalar reference on CPUs without FMA; all
// bit-identical to SgemmReference); other types go to Eigen.
// GemmReference() is the plain triple loop that the tests compare Eigen with.
#ifndef QAT_LIB_EXEC_OPS_GEMM_H_
#define QAT_LIB_EXEC_OPS_GEMM_H_

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "kernels/sgemm_variants.h"
#include "qat/thread_pool.h"

namespace qat {
namespace exec {

struct GemmShape {
  int64_t m = 0, k = 0, n = 0;
  bool trans_a = false;  // A is stored k x m
  bool trans_b = false;  // B is stored n x k
};

// C is cut into tiles of at most kRowsPerTask x kColsPerTask; each tile is
// one task.  Tile sizes depend on nothing but these constants, so the
// summation order (and so every bit of C) is the same for every thread count.
inline constexpr int64_t kRowsPerTask = kernels::kSgemmMaxRows;
inline constexpr int64_t kColsPerTask = kernels::kSgemmMaxCols;

// The tile of C at (row, col) as a SIMD kernel sees it; the packing buffers
// are the calling thread's.
inline kernels::SgemmTile MakeSgemmTile(const GemmShape& s, int64_t row, int64_t col,
                                        const float* a, const float* b, float* c) {
  thread_local std::vector<float> pack_a(kernels::kSgemmPackAFloats);
  thread_local std::vector<float> pack_b(kernels::kSgemmPackBFloats);
  kernels::SgemmTile t{};
  t.rows = std::min(kRowsPerTask, s.m - row);
  t.cols = std::min(kColsPerTask, s.n - col);
  t.depth = s.k;
  // op(A)[i][p] and op(B)[p][j] as strides into the stored matrices.
  t.a_row = s.trans_a ? 1 : s.k;
  t.a_col = s.trans_a ? s.m : 1;
  t.b_row = s.trans_b ? 1 : s.n;
  t.b_col = s.trans_b ? s.k : 1;
  // A caller that only packs B passes null for A and C.
  t.a = a != nullptr ? a + row * t.a_row : nullptr;
  t.b = b + col * t.b_col;
  t.c = c != nullptr ? c + row * s.n + col : nullptr;
  t.ldc = s.n;
  t.pack_a = pack_a.data();
  t.pack_b = pack_b.data();
  return t;
}

inline int64_t NumColTiles(const GemmShape& s) { return (s.n + kColsPerTask - 1) / kColsPerTask; }
// The tasks Gemm() cuts C into.
inline int64_t NumGemmTasks(const GemmShape& s) {
  return (s.m + kRowsPerTask - 1) / kRowsPerTask * NumColTiles(s);
}

// op(B) packed ahead for one SIMD kernel and one shape, for a B that stays
// the same across runs (constant weights): Gemm() then skips packing it.
struct PackedGemmB {
  const kernels::SgemmKernels* kernel = nullptr;
  const float* source = nullptr;
  GemmShape shape;
  std::vector<float> data;
  std::vector<int64_t> offsets;  // where each column tile's panels start

  bool Matches(const kernels::SgemmKernels* k, const float* b, const GemmShape& s) const {
    return kernel == k && source == b && shape.m == s.m && shape.k == s.k &&
           shape.n == s.n && shape.trans_a == s.trans_a && shape.trans_b == s.trans_b;
  }
};

inline void PackGemmB(ThreadPool* pool, const kernels::SgemmKernels& kernel,
                      const GemmShape& s, const float* b, PackedGemmB* out) {
  out->kernel = &kernel;
  out->source = b;
  out->shape = s;
  out->offsets.assign(NumColTiles(s) + 1, 0);
  for (int64_t tile = 0; tile < NumColTiles(s); ++tile) {
    const int64_t cols = std::min(kColsPerTask, s.n - tile * kColsPerTask);
    out->offsets[tile + 1] = out->offsets[tile] + kernel.packed_floats(cols, s.k);
  }
  out->data.resize(out->offsets.back());
  ParallelFor(pool, NumColTiles(s), [&](int64_t tile) {
    const kernels::SgemmTile t = MakeSgemmTile(s, 0, tile * kColsPerTask, nullptr, b, nullptr);
    kernel.pack_b(t, out->data.data() + out->offsets[tile]);
  });
}

// Where task `task` of NumGemmTasks(s) starts in C: row, then column.
inline std::array<int64_t, 2> GemmTaskCorner(const GemmShape& s, int64_t task) {
  return {task / NumColTiles(s) * kRowsPerTask, task % NumColTiles(s) * kColsPerTask};
}

// The tile of task `task`, reading B from `packed` (may be null: the tile
// packs its own) and applying `epilogue` (its row_bias indexed by rows of
// C) to its part of C.
inline kernels::SgemmTile GemmTaskTile(const GemmShape& s, int64_t task, const float* a,
                                       const float* b, float* c, const PackedGemmB* packed,
                                       const kernels::SgemmEpilogue& epilogue) {
  const auto [row, col] = GemmTaskCorner(s, task);
  kernels::SgemmTile t = MakeSgemmTile(s, row, col, a, b, c);
  if (packed != nullptr) t.packed_b = packed->data.data() + packed->offsets[col / kColsPerTask];
  t.epilogue = epilogue;
  if (epilogue.row_bias != nullptr) t.epilogue.row_bias += row;
  return t;
}

// Gemm() for floats on a SIMD kernel; `packed` (may be null) holds B packed
// ahead by PackGemmB for the same kernel and shape; each tile applies
// `epilogue` to its part of C.
inline void SgemmTiles(ThreadPool* pool, const kernels::SgemmKernels& kernel,
                       const GemmShape& s, const float* a, const float* b, float* c,
                       const PackedGemmB* packed = nullptr,
                       const kernels::SgemmEpilogue& epilogue = {}) {
  ParallelFor(pool, NumGemmTasks(s), [&](int64_t task) {
    kernel.tile(GemmTaskTile(s, task, a, b, c, packed, epilogue));
  });
}

// dst [rows x cols] = src^T, src stored [cols x rows]: blocks of
// kRowsPerTask rows over the pool, each reading its stretch of every stored
// row contiguously.
inline void TransposeMatrix(ThreadPool* pool, int64_t rows, int64_t cols, const float* src,
                            float* dst) {
  ParallelFor(pool, (rows + kRowsPerTask - 1) / kRowsPerTask, [&](int64_t block) {
    const int64_t first = block * kRowsPerTask, last = std::min(rows, first + kRowsPerTask);
    for (int64_t j = 0; j < cols; ++j) {
      for (int64_t i = first; i < last; ++i) dst[i * cols + j] = src[j * rows + i];
    }
  });
}

// A float GEMM's operands as its tiles read them (see Gemm()): a transposed
// A is transposed once ahead when several column tiles would each pack it,
// and B is packed once ahead (into `b_cache` when the caller keeps it, else
// into a per-thread buffer) when several row tiles would each pack it.
// Transposing once and packing once read the same values in the same order
// as the tiles would: the same bits.
struct SgemmOperands {
  GemmShape shape;
  const float* a;
  const PackedGemmB* packed_b;  // null: each tile packs its own B
};

inline SgemmOperands PrepareSgemmOperands(ThreadPool* pool, const kernels::SgemmKernels& kernel,
                                          const GemmShape& s, const float* a, const float* b,
                                          PackedGemmB* b_cache) {
  if (b_cache != nullptr && !b_cache->Matches(&kernel, b, s)) {
    PackGemmB(pool, kernel, s, b, b_cache);
  }
  // Kept per thread across calls: fresh buffers this large are fresh pages,
  // and faulting them in cost a tenth of a training step.  No GEMM runs
  // inside another on one thread (nested pool calls run inline).
  thread_local std::vector<float> a_rows;
  thread_local PackedGemmB b_packed;
  SgemmOperands op{s, a, b_cache};
  if (s.trans_a && NumColTiles(s) > 1) {
    a_rows.resize(static_cast<size_t>(s.m * s.k));
    // The calling thread's buffer, by pointer: inside pool tasks, a_rows
    // would name each pool thread's own.
    float* rows = a_rows.data();
    TransposeMatrix(pool, s.m, s.k, a, rows);
    op.a = rows;
    op.shape.trans_a = false;
  }
  // Pointwise layers with hundreds of output channels would otherwise pack
  // each image's B a dozen times.
  if (b_cache == nullptr && s.m > kRowsPerTask) {
    PackGemmB(pool, kernel, op.shape, b, &b_packed);
    op.packed_b = &b_packed;
  }
  return op;
}

// The running thread's buffer for one tile of C (a function, so that the
// buffer is made on whichever thread first asks).
inline float* ThreadTileOfC() {
  thread_local std::vector<float> tile(kRowsPerTask * kColsPerTask);
  return tile.data();
}

// C = op(A) * op(B) for floats, where C is never written: each finished
// tile, still in cache, goes to store(row, col, rows, cols, tile, ld) (rows
// x cols values of C from (row, col), row i at tile + i * ld), on the thread
// that computed it.  For a caller that would only copy C elsewhere (Conv's
// im2col path puts it into NCHW order with the bias): the same bits as
// Gemm() without C's round trip through memory.
template <typename Store>
void SgemmToStore(ThreadPool* pool, const GemmShape& s, const float* a, const float* b,
                  Store&& store) {
  if (s.m == 0 || s.n == 0) return;
  if (s.k == 0) {
    float* zeros = ThreadTileOfC();
    std::fill(zeros, zeros + kRowsPerTask * kColsPerTask, 0.0f);
    for (int64_t row = 0; row < s.m; row += kRowsPerTask) {
      for (int64_t col = 0; col < s.n; col += kColsPerTask) {
        store(row, col, std::min(kRowsPerTask, s.m - row), std::min(kColsPerTask, s.n - col),
              static_cast<const float*>(zeros), kColsPerTask);
      }
    }
    return;
  }
  const kernels::SgemmKernels& kernel = kernels::SelectedSgemmKernels();
  const SgemmOperands op = PrepareSgemmOperands(pool, kernel, s, a, b, nullptr);
  ParallelFor(pool, NumGemmTasks(op.shape), [&](int64_t task) {
    kernels::SgemmTile t = GemmTaskTile(op.shape, task, op.a, b, nullptr, op.packed_b, {});
    t.c = ThreadTileOfC();
    t.ldc = kColsPerTask;
    kernel.tile(t);
    const auto [row, col] = GemmTaskCorner(op.shape, task);
    store(row, col, t.rows, t.cols, static_cast<const float*>(t.c), kColsPerTask);
  });
}

// C = op(A) * op(B).  `b_cache`, when not null, is where a B that stays the
// same across calls (constant weights) is kept packed; it is refreshed when
// the kernel, the shape or b's address changes.
template <typename T>
void Gemm(ThreadPool* pool, const GemmShape& s, const T* a, const T* b, T* c,
          PackedGemmB* b_cache = nullptr) {
  using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Strided = Eigen::OuterStride<>;
  using ConstMap = Eigen::Map<const Matrix, 0, Strided>;
  if (s.m == 0 || s.n == 0) return;
  if (s.k == 0) {
    std::fill(c, c + s.m * s.n, T(0));
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    // Every tile packs its rows of a transposed A and its columns of B
    // (element by element when it is transposed: weight gradients,
    // ConvTranspose); PrepareSgemmOperands does either once ahead where
    // several tiles would repeat it.
    const kernels::SgemmKernels& kernel = kernels::SelectedSgemmKernels();
    const SgemmOperands op = PrepareSgemmOperands(pool, kernel, s, a, b, b_cache);
    SgemmTiles(pool, kernel, op.shape, op.a, b, c, op.packed_b);
    return;
  }
  ParallelFor(pool, NumGemmTasks(s), [&](int64_t task) {
    const auto [row, col] = GemmTaskCorner(s, task);
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

// Float C = op(A) * op(B), then c = activation(c + row_bias[i]) for every
// element (kernels::SgemmEpilogue), applied by each tile as it finishes:
// the bits of Gemm() followed by that pass, without the pass.
inline void GemmWithEpilogue(ThreadPool* pool, const GemmShape& s, const float* a,
                             const float* b, float* c, const kernels::SgemmEpilogue& epilogue) {
  if (s.m == 0 || s.n == 0) return;
  if (s.k == 0) {
    std::fill(c, c + s.m * s.n, 0.0f);
    epilogue.Apply(c, s.n, s.m, s.n);
    return;
  }
  const kernels::SgemmKernels& kernel = kernels::SelectedSgemmKernels();
  const SgemmOperands op = PrepareSgemmOperands(pool, kernel, s, a, b, nullptr);
  SgemmTiles(pool, kernel, op.shape, op.a, b, c, op.packed_b, epilogue);
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

#endif  // QAT_LIB_EXEC_OPS_GEMM_H_
