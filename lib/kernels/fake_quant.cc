#include "qat/fake_quant.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/checked_size.h"
#include "kernels/fake_quant_internal.h"
#include "qat/status_macros.h"

namespace qat {
namespace {

using kernels::FakeQuantGrid;
using kernels::FakeQuantKernels;
using kernels::kLsqChunk;
using kernels::LsqColumns;
using kernels::LsqLanes;
using kernels::LsqSums;

// Below this many elements a loop runs on the calling thread only: waking
// workers costs more than it saves.
constexpr int64_t kMinParallelElements = int64_t{1} << 16;

// Runs fn(begin, end) over [0, n) in pieces of at least `grain` items, on the
// pool when the work is large enough.  Piece boundaries do not affect the
// result of an elementwise loop, so they may depend on the thread count.
template <typename Fn>
void ParallelRanges(ThreadPool* pool, int64_t n, int64_t items_per_element,
                    Fn fn) {
  const int threads = pool == nullptr ? 1 : pool->num_threads();
  if (threads <= 1 || n * items_per_element < kMinParallelElements) {
    if (n > 0) fn(int64_t{0}, n);
    return;
  }
  constexpr int64_t kAlign = 64;  // keep pieces on cache-line multiples
  const int64_t pieces = std::min<int64_t>(4 * threads, (n + kAlign - 1) / kAlign);
  const int64_t step = ((n + pieces - 1) / pieces + kAlign - 1) / kAlign * kAlign;
  ParallelFor(pool, (n + step - 1) / step, [&](int64_t t) {
    fn(t * step, std::min(n, (t + 1) * step));
  });
}

bool IsInteger(float v) { return std::isfinite(v) && std::nearbyint(v) == v; }

absl::Status ValidateRange(const QuantRange& r) {
  if (r.quant_min >= r.quant_max) {
    return absl::InvalidArgumentError(
        absl::StrCat("FakeQuant needs quant_min < quant_max, got [",
                     r.quant_min, ", ", r.quant_max, "]"));
  }
  if (std::abs(int64_t{r.quant_min}) > kMaxQuantRangeMagnitude ||
      std::abs(int64_t{r.quant_max}) > kMaxQuantRangeMagnitude) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FakeQuant range [", r.quant_min, ", ", r.quant_max,
        "] is wider than float represents exactly (|q| <= 2^24)"));
  }
  return absl::OkStatus();
}

// `suffix` follows the parameter name in messages: "" or "[3]".
absl::Status ValidateScaleAndZeroPoint(float scale, float zero_point,
                                       const QuantRange& r,
                                       const std::string& suffix) {
  if (!(std::isfinite(scale) && scale > 0.0f)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FakeQuant scale", suffix, " must be positive and finite, got ", scale));
  }
  if (!IsInteger(zero_point) || zero_point < r.quant_min ||
      zero_point > r.quant_max) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FakeQuant zero_point", suffix, " must be an integer in [", r.quant_min,
        ", ", r.quant_max, "], got ", zero_point));
  }
  return absl::OkStatus();
}

absl::Status ValidateGradScale(float grad_scale) {
  if (!(std::isfinite(grad_scale) && grad_scale > 0.0f)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "LSQ grad_scale must be positive and finite, got ", grad_scale));
  }
  return absl::OkStatus();
}

absl::Status CheckSize(const char* what, size_t got, size_t want) {
  if (got != want) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FakeQuant ", what, " has ", got, " elements, expected ", want));
  }
  return absl::OkStatus();
}

// An output that may be left empty.
absl::Status CheckOptionalSize(const char* what, size_t got, size_t want) {
  return got == 0 ? absl::OkStatus() : CheckSize(what, got, want);
}

FakeQuantGrid MakeGrid(float scale, float zero_point, const QuantRange& r) {
  return {scale, zero_point, static_cast<float>(r.quant_min),
          static_cast<float>(r.quant_max)};
}

// A per-channel tensor seen as [outer, channels, inner].
struct ChannelLayout {
  int64_t outer = 1;
  int64_t channels = 1;
  int64_t inner = 1;
  int64_t size() const { return outer * channels * inner; }
};

// Splits `shape` around `axis` after checking the range, the rank, the axis
// and the element count; `what` names the granularity in messages.
absl::StatusOr<ChannelLayout> SplitAtAxis(absl::Span<const int64_t> shape,
                                          size_t x_size, int64_t axis_attr,
                                          const QuantRange& range,
                                          const char* what) {
  QAT_RETURN_IF_ERROR(ValidateRange(range));
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (rank == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " FakeQuant needs a tensor of rank >= 1, got a scalar"));
  }
  if (axis_attr < -rank || axis_attr >= rank) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " FakeQuant axis ", axis_attr,
                     " is out of range for a tensor of rank ", rank));
  }
  const int64_t axis = axis_attr < 0 ? axis_attr + rank : axis_attr;
  // Checked once for the whole shape: then no partial product below wraps.
  const absl::StatusOr<int64_t> count = CheckedElementCount(shape);
  if (!count.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " FakeQuant: ", count.status().message()));
  }
  ChannelLayout layout;
  for (int64_t d = 0; d < rank; ++d) {
    int64_t& part = d < axis ? layout.outer
                    : d == axis ? layout.channels
                                : layout.inner;
    part *= shape[d];
  }
  QAT_RETURN_IF_ERROR(CheckSize("input", x_size, layout.size()));
  return layout;
}

// Checks `count` scale and zero-point pairs.
absl::Status ValidateParamSpans(absl::Span<const float> scales,
                                absl::Span<const float> zero_points,
                                int64_t count, const QuantRange& range) {
  QAT_RETURN_IF_ERROR(CheckSize("scales", scales.size(), count));
  QAT_RETURN_IF_ERROR(CheckSize("zero_points", zero_points.size(), count));
  for (int64_t c = 0; c < count; ++c) {
    QAT_RETURN_IF_ERROR(ValidateScaleAndZeroPoint(
        scales[c], zero_points[c], range, absl::StrCat("[", c, "]")));
  }
  return absl::OkStatus();
}

absl::StatusOr<ChannelLayout> ResolvePerChannel(
    absl::Span<const int64_t> shape, size_t x_size,
    const PerChannelFakeQuantParams& p) {
  QAT_ASSIGN_OR_RETURN(const ChannelLayout layout,
                       SplitAtAxis(shape, x_size, p.axis, p.range, "per-channel"));
  QAT_RETURN_IF_ERROR(
      ValidateParamSpans(p.scales, p.zero_points, layout.channels, p.range));
  return layout;
}

// A per-block tensor: [outer, n, inner] with n (the `channels` of the
// layout) cut into `blocks` blocks of block_size.
struct BlockLayout {
  ChannelLayout split;
  int64_t block_size = 1;
  int64_t blocks = 1;
  int64_t entries() const { return split.outer * blocks * split.inner; }
  // Length of block b (the last may be short).
  int64_t Length(int64_t b) const {
    return std::min(block_size, split.channels - b * block_size);
  }
};

absl::StatusOr<BlockLayout> ResolvePerBlock(absl::Span<const int64_t> shape,
                                            size_t x_size,
                                            const BlockFakeQuantParams& p) {
  QAT_RETURN_IF_ERROR(BlockedParamShape(shape, p.axis, p.block_size).status());
  BlockLayout layout;
  QAT_ASSIGN_OR_RETURN(layout.split,
                       SplitAtAxis(shape, x_size, p.axis, p.range, "per-block"));
  layout.block_size = p.block_size;
  layout.blocks = (layout.split.channels + p.block_size - 1) / p.block_size;
  QAT_RETURN_IF_ERROR(
      ValidateParamSpans(p.scales, p.zero_points, layout.entries(), p.range));
  return layout;
}

std::vector<FakeQuantGrid> MakeGrids(absl::Span<const float> scales,
                                     absl::Span<const float> zero_points,
                                     const QuantRange& range) {
  std::vector<FakeQuantGrid> grids;
  grids.reserve(scales.size());
  for (size_t c = 0; c < scales.size(); ++c) {
    grids.push_back(MakeGrid(scales[c], zero_points[c], range));
  }
  return grids;
}

// LSQ sums of one channel of `layout` (the whole tensor when channels == 1),
// following the canonical order of fake_quant_reference.h.
LsqSums LsqChannelSums(const FakeQuantKernels& k, const ChannelLayout& layout,
                       int64_t c, const float* x, const float* dy, float* dx,
                       const FakeQuantGrid& grid) {
  LsqSums sums;
  LsqLanes lanes;
  int64_t in_chunk = 0;  // terms already in the current chunk
  for (int64_t o = 0; o < layout.outer; ++o) {
    const int64_t base = (o * layout.channels + c) * layout.inner;
    for (int64_t i = 0; i < layout.inner;) {
      const int64_t m = std::min(layout.inner - i, kLsqChunk - in_chunk);
      k.lsq_accumulate(m, x + base + i, dy + base + i,
                       dx == nullptr ? nullptr : dx + base + i, grid,
                       in_chunk, &lanes);
      i += m;
      in_chunk += m;
      if (in_chunk == kLsqChunk) {
        sums.AddChunk(lanes);
        lanes = LsqLanes();
        in_chunk = 0;
      }
    }
  }
  if (in_chunk != 0) sums.AddChunk(lanes);
  return sums;
}

// LSQ sums of the columns [c0, c0 + columns) of a tensor whose channels are
// its last axis (`stride` of them per row, `rows` rows): each chunk of rows
// through lsq_accumulate_rows, then every column's chunk into its sums.
// The same terms in the same order as LsqChannelSums, without one kernel
// call per element.
void LsqColumnSums(const FakeQuantKernels& k, int64_t rows, int64_t stride,
                   int64_t c0, int64_t columns, const float* x, const float* dy,
                   float* dx, const float* scales, const float* zero_points,
                   float qmin, float qmax, LsqSums* sums) {
  std::vector<float> acc(static_cast<size_t>(LsqColumns::Floats(columns)));
  for (int64_t r0 = 0; r0 < rows; r0 += kLsqChunk) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    const int64_t at = r0 * stride + c0;
    k.lsq_accumulate_rows(std::min(kLsqChunk, rows - r0), columns, stride, x + at, dy + at,
                          dx == nullptr ? nullptr : dx + at, scales + c0, zero_points + c0,
                          qmin, qmax, acc.data());
    for (int64_t c = 0; c < columns; ++c) {
      sums[c].AddChunk(LsqColumns::Lanes(acc.data(), columns, c));
    }
  }
}

// LSQ of one block entry whose terms are strided `inner` apart: gathered
// into contiguous scratch (memory order is the canonical order), summed as
// one channel, and dx scattered back.
LsqSums LsqStridedSums(const FakeQuantKernels& k, int64_t len, int64_t inner,
                       const float* x, const float* dy, float* dx,
                       const FakeQuantGrid& grid, std::vector<float>* scratch) {
  scratch->resize(3 * static_cast<size_t>(len));
  float* xs = scratch->data();
  float* dys = xs + len;
  float* dxs = dys + len;
  for (int64_t j = 0; j < len; ++j) {
    xs[j] = x[j * inner];
    dys[j] = dy[j * inner];
  }
  ChannelLayout run;
  run.inner = len;
  const LsqSums sums = LsqChannelSums(k, run, 0, xs, dys,
                                      dx == nullptr ? nullptr : dxs, grid);
  if (dx != nullptr) {
    for (int64_t j = 0; j < len; ++j) dx[j * inner] = dxs[j];
  }
  return sums;
}

}  // namespace

absl::Status ValidateFakeQuantParams(const FakeQuantParams& params) {
  QAT_RETURN_IF_ERROR(ValidateRange(params.range));
  return ValidateScaleAndZeroPoint(params.scale, params.zero_point,
                                   params.range, "");
}

namespace internal {

absl::Status FakeQuantPerTensor(const FakeQuantKernels& k,
                                absl::Span<const float> x, absl::Span<float> y,
                                absl::Span<bool> mask,
                                const FakeQuantParams& params,
                                ThreadPool* pool) {
  QAT_RETURN_IF_ERROR(ValidateFakeQuantParams(params));
  QAT_RETURN_IF_ERROR(CheckSize("output", y.size(), x.size()));
  QAT_RETURN_IF_ERROR(CheckOptionalSize("mask", mask.size(), x.size()));
  const FakeQuantGrid grid =
      MakeGrid(params.scale, params.zero_point, params.range);
  bool* m = mask.empty() ? nullptr : mask.data();
  ParallelRanges(pool, static_cast<int64_t>(x.size()), 1,
                 [&](int64_t b, int64_t e) {
                   k.forward(e - b, x.data() + b, y.data() + b,
                             m == nullptr ? nullptr : m + b, grid);
                 });
  return absl::OkStatus();
}

absl::Status FakeQuantPerChannel(const FakeQuantKernels& k,
                                 absl::Span<const int64_t> shape,
                                 absl::Span<const float> x, absl::Span<float> y,
                                 absl::Span<bool> mask,
                                 const PerChannelFakeQuantParams& params,
                                 ThreadPool* pool) {
  QAT_ASSIGN_OR_RETURN(const ChannelLayout layout,
                       ResolvePerChannel(shape, x.size(), params));
  QAT_RETURN_IF_ERROR(CheckSize("output", y.size(), x.size()));
  QAT_RETURN_IF_ERROR(CheckOptionalSize("mask", mask.size(), x.size()));
  bool* m = mask.empty() ? nullptr : mask.data();
  const float qmin = static_cast<float>(params.range.quant_min);
  const float qmax = static_cast<float>(params.range.quant_max);
  if (layout.inner == 1) {
    // Channels are the last axis: each row holds one element per channel.
    const int64_t row = layout.channels;
    ParallelRanges(pool, layout.outer, row, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        k.forward_row(row, x.data() + o * row, y.data() + o * row,
                      m == nullptr ? nullptr : m + o * row,
                      params.scales.data(), params.zero_points.data(), qmin,
                      qmax);
      }
    });
    return absl::OkStatus();
  }
  const std::vector<FakeQuantGrid> grids = MakeGrids(params.scales, params.zero_points, params.range);
  const int64_t runs = layout.outer * layout.channels;
  const int64_t inner = layout.inner;
  ParallelRanges(pool, runs, inner, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      k.forward(inner, x.data() + r * inner, y.data() + r * inner,
                m == nullptr ? nullptr : m + r * inner,
                grids[r % layout.channels]);
    }
  });
  return absl::OkStatus();
}

absl::Status FakeQuantGrad(const FakeQuantKernels& k,
                           absl::Span<const float> dy,
                           absl::Span<const bool> mask, absl::Span<float> dx,
                           ThreadPool* pool) {
  QAT_RETURN_IF_ERROR(CheckSize("mask", mask.size(), dy.size()));
  QAT_RETURN_IF_ERROR(CheckSize("dx", dx.size(), dy.size()));
  ParallelRanges(pool, static_cast<int64_t>(dy.size()), 1,
                 [&](int64_t b, int64_t e) {
                   k.ste_backward(e - b, dy.data() + b, mask.data() + b,
                                  dx.data() + b);
                 });
  return absl::OkStatus();
}

absl::StatusOr<LsqGradients> FakeQuantLsqGradPerTensor(
    const FakeQuantKernels& k, absl::Span<const float> x,
    absl::Span<const float> dy, absl::Span<float> dx,
    const FakeQuantParams& params, float grad_scale, ThreadPool* pool) {
  QAT_RETURN_IF_ERROR(ValidateFakeQuantParams(params));
  QAT_RETURN_IF_ERROR(ValidateGradScale(grad_scale));
  QAT_RETURN_IF_ERROR(CheckSize("dy", dy.size(), x.size()));
  QAT_RETURN_IF_ERROR(CheckOptionalSize("dx", dx.size(), x.size()));
  const FakeQuantGrid grid =
      MakeGrid(params.scale, params.zero_point, params.range);
  const int64_t n = static_cast<int64_t>(x.size());
  float* dxp = dx.empty() ? nullptr : dx.data();
  // Chunks are the unit of the canonical order, so they are also the unit
  // of parallel work: any thread count gives the same chunk sums.
  const int64_t chunks = (n + kLsqChunk - 1) / kLsqChunk;
  std::vector<LsqLanes> chunk_lanes(chunks);
  auto run_chunk = [&](int64_t c) {
    const int64_t b = c * kLsqChunk;
    k.lsq_accumulate(std::min(kLsqChunk, n - b), x.data() + b, dy.data() + b,
                     dxp == nullptr ? nullptr : dxp + b, grid, 0,
                     &chunk_lanes[c]);
  };
  if (n >= kMinParallelElements) {
    ParallelFor(pool, chunks, run_chunk);
  } else {
    for (int64_t c = 0; c < chunks; ++c) run_chunk(c);
  }
  LsqSums sums;
  for (const LsqLanes& lanes : chunk_lanes) sums.AddChunk(lanes);
  return LsqGradients{kernels::LsqScaleGrad(sums, grad_scale),
                      kernels::LsqZeroPointGrad(sums, grid, grad_scale)};
}

absl::Status FakeQuantLsqGradPerChannel(
    const FakeQuantKernels& k, absl::Span<const int64_t> shape,
    absl::Span<const float> x, absl::Span<const float> dy,
    absl::Span<float> dx, absl::Span<float> scale_grads,
    absl::Span<float> zero_point_grads,
    const PerChannelFakeQuantParams& params, float grad_scale,
    ThreadPool* pool) {
  QAT_ASSIGN_OR_RETURN(const ChannelLayout layout,
                       ResolvePerChannel(shape, x.size(), params));
  QAT_RETURN_IF_ERROR(ValidateGradScale(grad_scale));
  QAT_RETURN_IF_ERROR(CheckSize("dy", dy.size(), x.size()));
  QAT_RETURN_IF_ERROR(CheckOptionalSize("dx", dx.size(), x.size()));
  QAT_RETURN_IF_ERROR(
      CheckSize("scale_grads", scale_grads.size(), layout.channels));
  QAT_RETURN_IF_ERROR(CheckSize("zero_point_grads", zero_point_grads.size(),
                                layout.channels));
  const std::vector<FakeQuantGrid> grids = MakeGrids(params.scales, params.zero_points, params.range);
  float* dxp = dx.empty() ? nullptr : dx.data();
  if (layout.inner == 1 && layout.outer > 1) {
    // Channels are the last axis (a MatMul weight [K, N] along N): rows of
    // every channel at once, in tiles of columns that are the parallel work.
    constexpr int64_t kTile = 64;
    const int64_t channels = layout.channels;
    const int64_t tiles = (channels + kTile - 1) / kTile;
    std::vector<LsqSums> sums(static_cast<size_t>(channels));
    auto run_tile = [&](int64_t t) {
      const int64_t c0 = t * kTile;
      LsqColumnSums(k, layout.outer, channels, c0, std::min(kTile, channels - c0), x.data(),
                    dy.data(), dxp, params.scales.data(), params.zero_points.data(),
                    grids[0].quant_min, grids[0].quant_max, sums.data() + c0);
    };
    if (layout.size() >= kMinParallelElements) {
      ParallelFor(pool, tiles, run_tile);
    } else {
      for (int64_t t = 0; t < tiles; ++t) run_tile(t);
    }
    for (int64_t c = 0; c < channels; ++c) {
      scale_grads[c] = kernels::LsqScaleGrad(sums[c], grad_scale);
      zero_point_grads[c] = kernels::LsqZeroPointGrad(sums[c], grids[c], grad_scale);
    }
    return absl::OkStatus();
  }
  auto run_channel = [&](int64_t c) {
    const LsqSums sums =
        LsqChannelSums(k, layout, c, x.data(), dy.data(), dxp, grids[c]);
    scale_grads[c] = kernels::LsqScaleGrad(sums, grad_scale);
    zero_point_grads[c] = kernels::LsqZeroPointGrad(sums, grids[c], grad_scale);
  };
  if (layout.size() >= kMinParallelElements) {
    ParallelFor(pool, layout.channels, run_channel);
  } else {
    for (int64_t c = 0; c < layout.channels; ++c) run_channel(c);
  }
  return absl::OkStatus();
}

absl::Status FakeQuantPerBlock(const FakeQuantKernels& k,
                               absl::Span<const int64_t> shape,
                               absl::Span<const float> x, absl::Span<float> y,
                               absl::Span<bool> mask,
                               const BlockFakeQuantParams& params,
                               ThreadPool* pool) {
  QAT_ASSIGN_OR_RETURN(const BlockLayout layout,
                       ResolvePerBlock(shape, x.size(), params));
  QAT_RETURN_IF_ERROR(CheckSize("output", y.size(), x.size()));
  QAT_RETURN_IF_ERROR(CheckOptionalSize("mask", mask.size(), x.size()));
  bool* m = mask.empty() ? nullptr : mask.data();
  const int64_t n = layout.split.channels;
  const int64_t inner = layout.split.inner;
  if (inner == 1) {
    // Blocks along the last axis: each block is a contiguous run with one grid.
    const std::vector<FakeQuantGrid> grids =
        MakeGrids(params.scales, params.zero_points, params.range);
    ParallelRanges(pool, layout.entries(), layout.block_size,
                   [&](int64_t b, int64_t e) {
                     for (int64_t r = b; r < e; ++r) {
                       const int64_t o = r / layout.blocks;
                       const int64_t blk = r % layout.blocks;
                       const int64_t at = o * n + blk * layout.block_size;
                       k.forward(layout.Length(blk), x.data() + at, y.data() + at,
                                 m == nullptr ? nullptr : m + at, grids[r]);
                     }
                   });
    return absl::OkStatus();
  }
  // Otherwise each row of `inner` elements takes a row of parameters.
  const float qmin = static_cast<float>(params.range.quant_min);
  const float qmax = static_cast<float>(params.range.quant_max);
  ParallelRanges(pool, layout.split.outer * n, inner, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t o = r / n, j = r % n;
      const int64_t p = (o * layout.blocks + j / layout.block_size) * inner;
      k.forward_row(inner, x.data() + r * inner, y.data() + r * inner,
                    m == nullptr ? nullptr : m + r * inner,
                    params.scales.data() + p, params.zero_points.data() + p,
                    qmin, qmax);
    }
  });
  return absl::OkStatus();
}

absl::Status FakeQuantLsqGradPerBlock(
    const FakeQuantKernels& k, absl::Span<const int64_t> shape,
    absl::Span<const float> x, absl::Span<const float> dy,
    absl::Span<float> dx, absl::Span<float> scale_grads,
    absl::Span<float> zero_point_grads, const BlockFakeQuantParams& params,
    float grad_scale, ThreadPool* pool) {
  QAT_ASSIGN_OR_RETURN(const BlockLayout layout,
                       ResolvePerBlock(shape, x.size(), params));
  QAT_RETURN_IF_ERROR(ValidateGradScale(grad_scale));
  QAT_RETURN_IF_ERROR(CheckSize("dy", dy.size(), x.size()));
  QAT_RETURN_IF_ERROR(CheckOptionalSize("dx", dx.size(), x.size()));
  QAT_RETURN_IF_ERROR(
      CheckSize("scale_grads", scale_grads.size(), layout.entries()));
  QAT_RETURN_IF_ERROR(CheckSize("zero_point_grads", zero_point_grads.size(),
                                layout.entries()));
  const std::vector<FakeQuantGrid> grids =
      MakeGrids(params.scales, params.zero_points, params.range);
  float* dxp = dx.empty() ? nullptr : dx.data();
  const int64_t n = layout.split.channels;
  const int64_t inner = layout.split.inner;
  // One task per (outer, block): its entries' sums do not depend on the
  // thread that computes them.
  auto run_block = [&](int64_t t, std::vector<float>* scratch) {
    const int64_t o = t / layout.blocks, blk = t % layout.blocks;
    const int64_t len = layout.Length(blk);
    const int64_t base = (o * n + blk * layout.block_size) * inner;
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t entry = t * inner + i;
      const int64_t at = base + i;
      LsqSums sums;
      if (inner == 1) {
        ChannelLayout run;
        run.inner = len;
        sums = LsqChannelSums(k, run, 0, x.data() + at, dy.data() + at,
                              dxp == nullptr ? nullptr : dxp + at, grids[entry]);
      } else {
        sums = LsqStridedSums(k, len, inner, x.data() + at, dy.data() + at,
                              dxp == nullptr ? nullptr : dxp + at, grids[entry],
                              scratch);
      }
      scale_grads[entry] = kernels::LsqScaleGrad(sums, grad_scale);
      zero_point_grads[entry] =
          kernels::LsqZeroPointGrad(sums, grids[entry], grad_scale);
    }
  };
  const int64_t tasks = layout.split.outer * layout.blocks;
  if (layout.split.size() >= kMinParallelElements) {
    ParallelFor(pool, tasks, [&](int64_t t) {
      std::vector<float> scratch;
      run_block(t, &scratch);
    });
  } else {
    std::vector<float> scratch;
    for (int64_t t = 0; t < tasks; ++t) run_block(t, &scratch);
  }
  return absl::OkStatus();
}

}  // namespace internal

absl::Status FakeQuantPerTensor(absl::Span<const float> x, absl::Span<float> y,
                                absl::Span<bool> mask,
                                const FakeQuantParams& params,
                                ThreadPool* pool) {
  return internal::FakeQuantPerTensor(kernels::SelectedFakeQuantKernels(), x,
                                      y, mask, params, pool);
}

absl::Status FakeQuantPerChannel(absl::Span<const int64_t> shape,
                                 absl::Span<const float> x, absl::Span<float> y,
                                 absl::Span<bool> mask,
                                 const PerChannelFakeQuantParams& params,
                                 ThreadPool* pool) {
  return internal::FakeQuantPerChannel(kernels::SelectedFakeQuantKernels(),
                                       shape, x, y, mask, params, pool);
}

absl::Status FakeQuantGrad(absl::Span<const float> dy,
                           absl::Span<const bool> mask, absl::Span<float> dx,
                           ThreadPool* pool) {
  return internal::FakeQuantGrad(kernels::SelectedFakeQuantKernels(), dy,
                                 mask, dx, pool);
}

absl::Status FakeQuantPerBlock(absl::Span<const int64_t> shape,
                               absl::Span<const float> x, absl::Span<float> y,
                               absl::Span<bool> mask,
                               const BlockFakeQuantParams& params,
                               ThreadPool* pool) {
  return internal::FakeQuantPerBlock(kernels::SelectedFakeQuantKernels(),
                                     shape, x, y, mask, params, pool);
}

absl::Status FakeQuantLsqGradPerBlock(
    absl::Span<const int64_t> shape, absl::Span<const float> x,
    absl::Span<const float> dy, absl::Span<float> dx,
    absl::Span<float> scale_grads, absl::Span<float> zero_point_grads,
    const BlockFakeQuantParams& params, float grad_scale, ThreadPool* pool) {
  return internal::FakeQuantLsqGradPerBlock(
      kernels::SelectedFakeQuantKernels(), shape, x, dy, dx, scale_grads,
      zero_point_grads, params, grad_scale, pool);
}

absl::StatusOr<float> LsqGradScale(int64_t num_elements, int32_t quant_max) {
  if (num_elements <= 0 || quant_max <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "LSQ gradient scale needs num_elements > 0 and quant_max > 0, got ",
        num_elements, " and ", quant_max));
  }
  return static_cast<float>(
      1.0 / std::sqrt(static_cast<double>(num_elements) * quant_max));
}

absl::StatusOr<LsqGradients> FakeQuantLsqGradPerTensor(
    absl::Span<const float> x, absl::Span<const float> dy, absl::Span<float> dx,
    const FakeQuantParams& params, float grad_scale, ThreadPool* pool) {
  return internal::FakeQuantLsqGradPerTensor(
      kernels::SelectedFakeQuantKernels(), x, dy, dx, params, grad_scale, pool);
}

absl::Status FakeQuantLsqGradPerChannel(
    absl::Span<const int64_t> shape, absl::Span<const float> x,
    absl::Span<const float> dy, absl::Span<float> dx,
    absl::Span<float> scale_grads, absl::Span<float> zero_point_grads,
    const PerChannelFakeQuantParams& params, float grad_scale,
    ThreadPool* pool) {
  return internal::FakeQuantLsqGradPerChannel(
      kernels::SelectedFakeQuantKernels(), shape, x, dy, dx, scale_grads,
      zero_point_grads, params, grad_scale, pool);
}

float RoundZeroPoint(float zero_point, QuantRange range) {
  const float lo = static_cast<float>(range.quant_min);
  const float hi = static_cast<float>(range.quant_max);
  if (!(zero_point >= lo)) return lo;  // also NaN
  if (zero_point > hi) return hi;
  return std::nearbyint(zero_point);
}

const char* FakeQuantKernelVariant() {
  return kernels::SelectedFakeQuantKernels().name;
}

}  // namespace qat
