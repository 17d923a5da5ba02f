// ONNX schemas for the custom ops libqat reads and writes, registered with
// ONNX's schema registry so that onnx::checker validates them and shape
// inference sees through them:
//   com.microsoft FakeQuant (v1)      X, scale, zero_point -> Y, mask
//   com.microsoft FakeQuantGrad (v1)  dY, gradient_mask -> dX
//   ai.libqat FakeQuant (v1)          the same with an `axis` attribute and
//                                     1-D scale and zero_point
// The com.microsoft ones follow ONNX Runtime's contrib schemas.
#ifndef QAT_LIB_CORE_OP_SCHEMAS_H_
#define QAT_LIB_CORE_OP_SCHEMAS_H_

namespace qat {

inline constexpr char kMicrosoftDomain[] = "com.microsoft";
inline constexpr char kLibqatDomain[] = "ai.libqat";

// Idempotent and thread-safe; Model loading calls it.
void RegisterOpSchemas();

}  // namespace qat

#endif  // QAT_LIB_CORE_OP_SCHEMAS_H_
