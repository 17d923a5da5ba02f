# Compiler settings shared by every libqat target.
#
# -ffp-contract=off: the kernels promise bit-identical results between the
# scalar reference and the SIMD variants, and between libqat's FakeQuant and
# ONNX QuantizeLinear/DequantizeLinear.  A fused multiply-add would round once
# where the definition rounds twice.
# -fno-math-errno: libqat never reads errno after sqrt and friends, and the
# errno path keeps loops that call them from being vectorized.  Results are
# unchanged.
add_library(qat_compile_options INTERFACE)
target_compile_options(qat_compile_options INTERFACE
  $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wno-unused-parameter -ffp-contract=off
                                 -fno-math-errno>)

# Flags for the translation units that hold AVX2 kernel variants.  Only those
# files get them; the dispatcher picks a variant after checking the CPU.
set(QAT_AVX2_FLAGS -mavx2)
set(QAT_AVX2_FMA_FLAGS -mavx2 -mfma)
set(QAT_AVX512_FLAGS -mavx512f -mfma)
