// libqat's own checks of an opset-21 model, in place of the ONNX checker and
// shape inference, which Debian's ONNX 1.12 (opsets up to 17, IR version 8)
// cannot run on such a file.  docs/formats.md lists what is checked and
// what ONNX would check that is not.
//
// An opset-21 model passes when:
//  1. its ir_version is 10 or lower and it imports the default domain at
//     exactly 21 (18-20 are not accepted);
//  2. every default-domain node names an op that ONNX 1.12 defines, and none
//     of the ops whose meaning changed after opset 17 in a way libqat does
//     not run (kChangedAfter17 in the .cc file, with the reason for each);
//  3. every graph input, output and initializer name is unique and every
//     node input is produced before it is read (topological order);
//  4. every INT4 / UINT4 tensor is an initializer with packed raw_data of
//     ceil(n / 2) bytes (core/int4_packing.h), read only as input 0 or 2 of
//     DequantizeLinear;
//  5. every QuantizeLinear / DequantizeLinear with block_size > 0 has a
//     constant scale (an initializer, or a DequantizeLinear of one: uint8
//     block scales) and zero point (optional) of the blocked shape
//     (BlockedParamShape) for its constant input, and a zero point of the
//     input's type.
#ifndef QAT_LIB_CORE_OPSET21_CHECK_H_
#define QAT_LIB_CORE_OPSET21_CHECK_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "onnx/onnx_pb.h"

namespace qat {

inline constexpr int64_t kInt4Opset = 21;
inline constexpr int64_t kInt4IrVersion = 10;

// InvalidArgument naming `source`, the node or the tensor, for a model that
// breaks one of the rules above.
absl::Status CheckOpset21Model(const onnx::ModelProto& model, const std::string& source);

}  // namespace qat

#endif  // QAT_LIB_CORE_OPSET21_CHECK_H_
