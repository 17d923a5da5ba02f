// The instruction sets that kernel variants are compiled for, and the CPU
// check that comes before using one.  The check lives in baseline code
// (isa.cc), never in a file built for a wider instruction set.
#ifndef QAT_LIB_KERNELS_ISA_H_
#define QAT_LIB_KERNELS_ISA_H_

namespace qat {
namespace kernels {

enum class Isa {
  kScalar,
  kSse2,
  kAvx2,
  kAvx2Fma,  // AVX2 with FMA3
  kAvx512,   // AVX-512F (which implies FMA3)
};

// True when this CPU (and its operating system) can run code built for isa.
bool CpuSupports(Isa isa);

}  // namespace kernels
}  // namespace qat

#endif  // QAT_LIB_KERNELS_ISA_H_
