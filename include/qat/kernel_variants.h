// Which kernel variants the dispatch chose on this CPU, per kernel family:
// what `qat --version` prints.  Each family picks the widest instruction
// set it has a variant for (GEMM and convolution up to AVX-512, FakeQuant up
// to AVX2), so one machine can run several; QAT_KERNEL_VARIANT (and
// QAT_GEMM_VARIANT for the GEMM) select another supported variant.
#ifndef QAT_KERNEL_VARIANTS_H_
#define QAT_KERNEL_VARIANTS_H_

#include <string>

#include "qat/api.h"

namespace qat {

// The GEMM's (and the convolutions' built on it) variant: "avx512",
// "avx2_fma", "scalar", ...
QAT_API const char* GemmKernelVariant();

// Every family's choice: "gemm avx512, fake-quant avx2", or one name when
// they agree ("scalar").
QAT_API std::string KernelVariants();

}  // namespace qat

#endif  // QAT_KERNEL_VARIANTS_H_
