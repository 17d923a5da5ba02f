#include "kernels/isa.h"

namespace qat {
namespace kernels {

bool CpuSupports(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  switch (isa) {
    case Isa::kScalar: return true;
    case Isa::kSse2: return __builtin_cpu_supports("sse2");
    case Isa::kAvx2: return __builtin_cpu_supports("avx2");
    case Isa::kAvx2Fma:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  }
  return false;
#else
  return isa == Isa::kScalar;
#endif
}

}  // namespace kernels
}  // namespace qat
