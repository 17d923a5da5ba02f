#include "qat/kernel_variants.h"

#include "absl/strings/str_cat.h"
#include "kernels/sgemm_variants.h"
#include "qat/fake_quant.h"

namespace qat {

const char* GemmKernelVariant() { return kernels::SelectedSgemmKernels().name; }

std::string KernelVariants() {
  // One name when every family runs the same variant (QAT_KERNEL_VARIANT=scalar).
  if (std::string(GemmKernelVariant()) == FakeQuantKernelVariant()) return GemmKernelVariant();
  return absl::StrCat("gemm ", GemmKernelVariant(), ", fake-quant ", FakeQuantKernelVariant());
}

}  // namespace qat
