// QAT_TARGET_CLONES before a function compiles it once per instruction set
// (AVX-512, AVX2, baseline); the dynamic loader picks the clone for the CPU
// (GCC and Clang function multi-versioning).  Only for loops whose every
// operation is correctly rounded IEEE arithmetic (with -ffp-contract=off no
// multiply-add is fused), so that every clone computes the same bits.
#ifndef QAT_LIB_KERNELS_TARGET_CLONES_H_
#define QAT_LIB_KERNELS_TARGET_CLONES_H_

#if (defined(__x86_64__) || defined(__i386__)) && defined(__ELF__) && \
    (defined(__GNUC__) || defined(__clang__)) && !defined(QAT_NO_TARGET_CLONES)
#define QAT_TARGET_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define QAT_TARGET_CLONES
#endif

// For helpers of a cloned function: inlined into each clone, so that they
// are compiled for its instruction set (an out-of-line copy is baseline).
#if defined(__GNUC__) || defined(__clang__)
#define QAT_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define QAT_ALWAYS_INLINE inline
#endif

#endif  // QAT_LIB_KERNELS_TARGET_CLONES_H_
