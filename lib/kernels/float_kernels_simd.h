// One instruction set's table of float kernels (kernels/sgemm_variants.h):
// the GEMM and the direct convolution, instantiated over the traits class V
// with the register blocking that suits it.  The same rules as
// sgemm_simd.h: include only with V in an anonymous namespace of a
// translation unit built for V's instruction set.
#ifndef QAT_LIB_KERNELS_FLOAT_KERNELS_SIMD_H_
#define QAT_LIB_KERNELS_FLOAT_KERNELS_SIMD_H_

#include <cstdint>

#include "kernels/depthwise_conv_simd.h"
#include "kernels/direct_conv_simd.h"
#include "kernels/sgemm_simd.h"
#include "kernels/small_output_conv_simd.h"

namespace qat {
namespace kernels {
namespace simd {

// kGemmRows x (kGemmVectors vectors) GEMM micro-tiles; direct-convolution
// rows of one vector take kConvChannelsOne output channels at a time, rows
// of two vectors kConvChannelsTwo.
template <class V, int kGemmRows, int kGemmVectors, int kConvChannelsOne, int kConvChannelsTwo>
struct FloatKernels {
  using Gemm = Sgemm<V, kGemmRows, kGemmVectors>;
  using ConvOneVector = DirectConvSimd<V, 1, kConvChannelsOne>;
  using ConvTwoVectors = DirectConvSimd<V, 2, kConvChannelsTwo>;
  using Depthwise = DepthwiseConvSimd<V>;
  using SmallOutput = SmallOutputConvSimd<V>;

  static int64_t PackedFloats(int64_t cols, int64_t depth) {
    return Gemm::PaddedCols(cols) * depth;
  }
  static void RunDirectConv(const DirectConv& a) {
    if (ConvOneVector::Fits(a)) {
      ConvOneVector::Run(a);
    } else {
      ConvTwoVectors::Run(a);
    }
  }
  static constexpr SgemmKernels Table(const char* name, Isa isa) {
    return {name,         isa,           Gemm::Tile,           Gemm::PackWholeB,
            PackedFloats, RunDirectConv, ConvTwoVectors::Fits, Depthwise::Forward,
            Depthwise::Transpose, SmallOutput::Run,     SmallOutput::Fits};
  }
};

}  // namespace simd
}  // namespace kernels
}  // namespace qat

#endif  // QAT_LIB_KERNELS_FLOAT_KERNELS_SIMD_H_
