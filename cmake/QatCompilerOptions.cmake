# Compiler settings shared by every libqat target.
#
# -ffp-contract=off: the kernels promise bit-identical results between the
# scalar reference and the SIMD variants, and between libqat's FakeQuant and
# ONNX QuantizeLinear/DequantizeLinear.  A fused multiply-add would round once
# where the definition rounds twice.
add_library(qat_compile_options INTERFACE)
target_compile_options(qat_compile_options INTERFACE
  $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wno-unused-parameter -ffp-contract=off>)

# Flags for the translation units that hold AVX2 kernel variants.  Only those
# files get them; the dispatcher picks a variant after checking the CPU.
set(QAT_AVX2_FLAGS -mavx2)
