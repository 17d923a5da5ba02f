// Picks the FakeQuant kernel variant for this CPU.
#include <cstdlib>
#include <cstring>

#include "kernels/fake_quant_variants.h"

namespace qat {
namespace kernels {
namespace {

const FakeQuantKernels& SelectOnce() {
  const std::vector<const FakeQuantKernels*> supported =
      SupportedFakeQuantVariants();
  if (const char* wanted = std::getenv("QAT_KERNEL_VARIANT")) {
    for (const FakeQuantKernels* k : supported) {
      if (std::strcmp(k->name, wanted) == 0) return *k;
    }
  }
  return *supported.back();
}

}  // namespace

std::vector<const FakeQuantKernels*> SupportedFakeQuantVariants() {
  std::vector<const FakeQuantKernels*> out;
#define QAT_ADD_IF_SUPPORTED_(name) \
  if (CpuSupports(kFakeQuant_##name.isa)) out.push_back(&kFakeQuant_##name);
  QAT_FAKE_QUANT_VARIANTS(QAT_ADD_IF_SUPPORTED_)
#undef QAT_ADD_IF_SUPPORTED_
  return out;
}

const FakeQuantKernels& SelectedFakeQuantKernels() {
  static const FakeQuantKernels& selected = SelectOnce();
  return selected;
}

}  // namespace kernels
}  // namespace qat
