// The FakeQuant entry points with an explicit kernel variant.  The public
// functions in qat/fake_quant.h call these with the selected variant; the
// tests call them with every variant.
#ifndef QAT_LIB_KERNELS_FAKE_QUANT_INTERNAL_H_
#define QAT_LIB_KERNELS_FAKE_QUANT_INTERNAL_H_

#include "kernels/fake_quant_variants.h"
#include "qat/fake_quant.h"

namespace qat {
namespace internal {

absl::Status FakeQuantPerTensor(const kernels::FakeQuantKernels& kernels,
                                absl::Span<const float> x, absl::Span<float> y,
                                absl::Span<bool> mask,
                                const FakeQuantParams& params,
                                ThreadPool* pool);

absl::Status FakeQuantPerChannel(const kernels::FakeQuantKernels& kernels,
                                 absl::Span<const int64_t> shape,
                                 absl::Span<const float> x, absl::Span<float> y,
                                 absl::Span<bool> mask,
                                 const PerChannelFakeQuantParams& params,
                                 ThreadPool* pool);

absl::Status FakeQuantGrad(const kernels::FakeQuantKernels& kernels,
                           absl::Span<const float> dy,
                           absl::Span<const bool> mask, absl::Span<float> dx,
                           ThreadPool* pool);

absl::StatusOr<LsqGradients> FakeQuantLsqGradPerTensor(
    const kernels::FakeQuantKernels& kernels, absl::Span<const float> x,
    absl::Span<const float> dy, absl::Span<float> dx,
    const FakeQuantParams& params, float grad_scale, ThreadPool* pool);

absl::Status FakeQuantLsqGradPerChannel(
    const kernels::FakeQuantKernels& kernels, absl::Span<const int64_t> shape,
    absl::Span<const float> x, absl::Span<const float> dy,
    absl::Span<float> dx, absl::Span<float> scale_grads,
    absl::Span<float> zero_point_grads,
    const PerChannelFakeQuantParams& params, float grad_scale,
    ThreadPool* pool);

absl::Status FakeQuantPerBlock(const kernels::FakeQuantKernels& kernels,
                               absl::Span<const int64_t> shape,
                               absl::Span<const float> x, absl::Span<float> y,
                               absl::Span<bool> mask,
                               const BlockFakeQuantParams& params,
                               ThreadPool* pool);

absl::Status FakeQuantLsqGradPerBlock(
    const kernels::FakeQuantKernels& kernels, absl::Span<const int64_t> shape,
    absl::Span<const float> x, absl::Span<const float> dy,
    absl::Span<float> dx, absl::Span<float> scale_grads,
    absl::Span<float> zero_point_grads, const BlockFakeQuantParams& params,
    float grad_scale, ThreadPool* pool);

}  // namespace internal
}  // namespace qat

#endif  // QAT_LIB_KERNELS_FAKE_QUANT_INTERNAL_H_
