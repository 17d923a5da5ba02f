// Picks the GEMM kernel variant for this CPU.
#include <cstdlib>
#include <cstring>

#include "kernels/sgemm_variants.h"

namespace qat {
namespace kernels {
namespace {

const SgemmKernels& SelectOnce() {
  const std::vector<const SgemmKernels*> supported = SupportedSgemmVariants();
  for (const char* variable : {"QAT_GEMM_VARIANT", "QAT_KERNEL_VARIANT"}) {
    const char* wanted = std::getenv(variable);
    if (wanted == nullptr) continue;
    for (const SgemmKernels* k : supported) {
      if (std::strcmp(k->name, wanted) == 0) return *k;
    }
  }
  return *supported.back();
}

}  // namespace

std::vector<const SgemmKernels*> SupportedSgemmVariants() {
  std::vector<const SgemmKernels*> out;
#define QAT_ADD_IF_SUPPORTED_(name) \
  if (CpuSupports(kSgemm_##name.isa)) out.push_back(&kSgemm_##name);
  QAT_SGEMM_VARIANTS(QAT_ADD_IF_SUPPORTED_)
#undef QAT_ADD_IF_SUPPORTED_
  return out;
}

const SgemmKernels& SelectedSgemmKernels() {
  static const SgemmKernels& selected = SelectOnce();
  return selected;
}

}  // namespace kernels
}  // namespace qat
