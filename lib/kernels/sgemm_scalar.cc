// The scalar float kernels: SgemmReference and the convolution references
// behind the variant table, the fallback on CPUs without FMA and in builds
// without the SIMD variants (QAT_ENABLE_AVX2=OFF).  Built for baseline x86-64, where
// std::fma is a library call (one fused multiply-add in hardware when the CPU
// has FMA, a correctly rounded software emulation otherwise): slow, but the
// same bits as every other variant.
#include "kernels/sgemm_variants.h"

namespace qat {
namespace kernels {
namespace {

// op(B) of a tile packed as cols x depth, each column contiguous: the order
// in which the reference walks it.
int64_t PackedFloats(int64_t cols, int64_t depth) { return cols * depth; }

void PackB(const SgemmTile& t, float* out) {
  for (int64_t j = 0; j < t.cols; ++j) {
    for (int64_t p = 0; p < t.depth; ++p) out[j * t.depth + p] = t.b[p * t.b_row + j * t.b_col];
  }
}

void Tile(const SgemmTile& t) {
  if (t.packed_b == nullptr) {
    SgemmReference(t);
  } else {
    SgemmTile packed = t;
    packed.b = t.packed_b;
    packed.b_row = 1;
    packed.b_col = t.depth;
    SgemmReference(packed);
  }
  t.epilogue.Apply(t.c, t.ldc, t.rows, t.cols);
}

// Convolution goes through im2col and Tile instead: the same bits, and
// faster than DirectConvReference's bounds check per tap (LeNet-5's forward
// pass: 0.26 s against 0.44 s for 256 images on one thread).
bool DirectConvFits(const DirectConv&) { return false; }
bool SmallOutputConvFits(const SmallOutputConv&) { return false; }

}  // namespace

const SgemmKernels kSgemm_scalar = {"scalar",
                                    Isa::kScalar,
                                    Tile,
                                    PackB,
                                    PackedFloats,
                                    DirectConvReference,
                                    DirectConvFits,
                                    DepthwiseConvReference,
                                    DepthwiseConvTransposeReference,
                                    SmallOutputConvReference,
                                    SmallOutputConvFits};

}  // namespace kernels
}  // namespace qat
