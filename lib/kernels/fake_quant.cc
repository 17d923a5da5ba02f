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
using kernels::kLsqLanes;
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

absl::StatusOr<ChannelLayout> ResolvePerChannel(
    absl::Span<const int64_t> shape, size_t x_size,
    const PerChannelFakeQuantParams& p) {
  QAT_RETURN_IF_ERROR(ValidateRange(p.range));
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (rank == 0) {
    return absl::InvalidArgumentError(
        "per-channel FakeQuant needs a tensor of rank >= 1, got a scalar");
  }
  if (p.axis < -rank || p.axis >= rank) {
    return absl::InvalidArgumentError(
        absl::StrCat("per-channel FakeQuant axis ", p.axis,
                     " is out of range for a tensor of rank ", rank));
  }
  const int64_t axis = p.axis < 0 ? p.axis + rank : p.axis;
  // Checked once for the whole shape: then no partial product below wraps.
  const absl::StatusOr<int64_t> count = CheckedElementCount(shape);
  if (!count.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("per-channel FakeQuant: ", count.status().message()));
  }
  ChannelLayout layout;
  for (int64_t d = 0; d < rank; ++d) {
    int64_t& part = d < axis ? layout.outer
                    : d == axis ? layout.channels
                                : layout.inner;
    part *= shape[d];
  }
  QAT_RETURN_IF_ERROR(CheckSize("input", x_size, layout.size()));
  QAT_RETURN_IF_ERROR(CheckSize("scales", p.scales.size(), layout.channels));
  QAT_RETURN_IF_ERROR(
      CheckSize("zero_points", p.zero_points.size(), layout.channels));
  for (int64_t c = 0; c < layout.channels; ++c) {
    QAT_RETURN_IF_ERROR(ValidateScaleAndZeroPoint(
        p.scales[c], p.zero_points[c], p.range, absl::StrCat("[", c, "]")));
  }
  return layout;
}

std::vector<FakeQuantGrid> MakeGrids(const PerChannelFakeQuantParams& p) {
  std::vector<FakeQuantGrid> grids;
  grids.reserve(p.scales.size());
  for (size_t c = 0; c < p.scales.size(); ++c) {
    grids.push_back(MakeGrid(p.scales[c], p.zero_points[c], p.range));
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
                       static_cast<int>(in_chunk % kLsqLanes), &lanes);
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
  const std::vector<FakeQuantGrid> grids = MakeGrids(params);
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
  const std::vector<FakeQuantGrid> grids = MakeGrids(params);
  float* dxp = dx.empty() ? nullptr : dx.data();
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
