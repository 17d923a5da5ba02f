// FakeQuant: quantize-then-dequantize in float, with the gradients that
// quantization-aware training needs.
//
//   y    = (clamp(nearbyint(x / scale) + zero_point, qmin, qmax) - zero_point) * scale
//   mask = qmin <= nearbyint(x / scale) + zero_point <= qmax
//
// This is exactly ONNX QuantizeLinear followed by DequantizeLinear, so a model
// trained with FakeQuant and its exported QDQ form agree bit for bit.  The
// arithmetic, the NaN/Inf rules and the summation order of the gradients are
// defined in qat/kernels/fake_quant_reference.h; these functions validate
// their arguments, pick the fastest kernel variant the CPU supports, and
// split large inputs over a ThreadPool.  Results are bit-identical for every
// variant and every thread count.
//
// Every function returns InvalidArgument, naming the offending value, for:
// a scale that is not positive and finite; a zero point that is not an
// integer inside [quant_min, quant_max]; quant_min >= quant_max or a range
// wider than 2^24; spans whose sizes disagree; a per-channel axis or
// parameter count that does not fit the shape; a block size below 1.
#ifndef QAT_FAKE_QUANT_H_
#define QAT_FAKE_QUANT_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "qat/api.h"
#include "qat/quant_params.h"
#include "qat/quant_range.h"
#include "qat/thread_pool.h"

namespace qat {

// Per-tensor quantization parameters.  The zero point is a float holding an
// integer, as in ONNX Runtime's com.microsoft FakeQuant.
struct FakeQuantParams {
  float scale = 1.0f;
  float zero_point = 0.0f;
  QuantRange range = QuantRange::Int8();
};

// Per-channel parameters: channel c along `axis` uses scales[c] and
// zero_points[c].  A negative axis counts from the end, as in ONNX.
struct PerChannelFakeQuantParams {
  absl::Span<const float> scales;
  absl::Span<const float> zero_points;
  int64_t axis = 0;
  QuantRange range = QuantRange::Int8();
};

// Per-block parameters (ONNX opset 21's blocked quantization): along
// `axis`, each run of block_size consecutive elements shares one scale and
// zero point; the last block may be shorter.  scales and zero_points are
// row-major tensors of BlockedParamShape(x's shape, axis, block_size)
// (qat/quant_params.h).
struct BlockFakeQuantParams {
  absl::Span<const float> scales;
  absl::Span<const float> zero_points;
  int64_t axis = 0;
  int64_t block_size = 0;
  QuantRange range = QuantRange::Int4();
};

QAT_API absl::Status ValidateFakeQuantParams(const FakeQuantParams& params);

// ---- Forward ---------------------------------------------------------------

// y and mask must have x's size; mask may be empty when it is not needed.
QAT_API absl::Status FakeQuantPerTensor(absl::Span<const float> x,
                                        absl::Span<float> y,
                                        absl::Span<bool> mask,
                                        const FakeQuantParams& params,
                                        ThreadPool* pool = nullptr);

// x has the given shape (row-major); y and mask (optional) likewise.
QAT_API absl::Status FakeQuantPerChannel(absl::Span<const int64_t> shape,
                                         absl::Span<const float> x,
                                         absl::Span<float> y,
                                         absl::Span<bool> mask,
                                         const PerChannelFakeQuantParams& params,
                                         ThreadPool* pool = nullptr);

// Per block: x has the given shape; y and mask (optional) likewise.
QAT_API absl::Status FakeQuantPerBlock(absl::Span<const int64_t> shape,
                                       absl::Span<const float> x,
                                       absl::Span<float> y,
                                       absl::Span<bool> mask,
                                       const BlockFakeQuantParams& params,
                                       ThreadPool* pool = nullptr);

// ---- Backward: straight-through estimator ----------------------------------

// dx = mask ? dy : 0 (ONNX Runtime's FakeQuantGrad).
QAT_API absl::Status FakeQuantGrad(absl::Span<const float> dy,
                                   absl::Span<const bool> mask,
                                   absl::Span<float> dx,
                                   ThreadPool* pool = nullptr);

// ---- Backward: learnable scale and zero point (LSQ, LSQ+) ------------------

// LSQ's gradient scale g = 1 / sqrt(num_elements * quant_max).  The caller
// chooses num_elements: the number of weights per channel, or the number of
// activation features, as in the LSQ paper.
QAT_API absl::StatusOr<float> LsqGradScale(int64_t num_elements,
                                           int32_t quant_max);

struct LsqGradients {
  float scale = 0.0f;
  float zero_point = 0.0f;
};

// Computes dx (optional: pass an empty span to skip it) and the gradients of
// the scale and the zero point, each multiplied by grad_scale.
QAT_API absl::StatusOr<LsqGradients> FakeQuantLsqGradPerTensor(
    absl::Span<const float> x, absl::Span<const float> dy, absl::Span<float> dx,
    const FakeQuantParams& params, float grad_scale = 1.0f,
    ThreadPool* pool = nullptr);

// Per channel: scale_grads and zero_point_grads receive one value per channel.
QAT_API absl::Status FakeQuantLsqGradPerChannel(
    absl::Span<const int64_t> shape, absl::Span<const float> x,
    absl::Span<const float> dy, absl::Span<float> dx,
    absl::Span<float> scale_grads, absl::Span<float> zero_point_grads,
    const PerChannelFakeQuantParams& params, float grad_scale = 1.0f,
    ThreadPool* pool = nullptr);

// Per block: scale_grads and zero_point_grads receive one value per block
// entry, shaped as the parameters.
QAT_API absl::Status FakeQuantLsqGradPerBlock(
    absl::Span<const int64_t> shape, absl::Span<const float> x,
    absl::Span<const float> dy, absl::Span<float> dx,
    absl::Span<float> scale_grads, absl::Span<float> zero_point_grads,
    const BlockFakeQuantParams& params, float grad_scale = 1.0f,
    ThreadPool* pool = nullptr);

// The zero point a learnable (real-valued) zero point stands for: clamped
// to the range and rounded half to even, as PyTorch's learnable fake
// quantization rounds it in the forward pass.  NaN gives quant_min.
QAT_API float RoundZeroPoint(float zero_point, QuantRange range);

// Name of the kernel variant the functions above use on this CPU ("avx2",
// "sse2" or "scalar").  The environment variable QAT_KERNEL_VARIANT, read
// once, selects another supported variant (for benchmarks and debugging).
QAT_API const char* FakeQuantKernelVariant();

}  // namespace qat

#endif  // QAT_FAKE_QUANT_H_
