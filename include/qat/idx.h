// Reading IDX files, the format of MNIST and Fashion-MNIST.
//
// An IDX file is a big-endian header (two zero bytes, a type code, the rank,
// then one uint32 per dimension) followed by the elements.  Only unsigned
// byte data (type code 0x08) is supported.  gzip-compressed files (.gz) are
// read transparently.
#ifndef QAT_IDX_H_
#define QAT_IDX_H_

#include <string>

#include "absl/status/statusor.h"
#include "qat/api.h"
#include "qat/tensor.h"

namespace qat {

// Returns a uint8 tensor with the file's dimensions; InvalidArgument, naming
// the file, for a bad header or a truncated file; NotFound if it is missing.
QAT_API absl::StatusOr<Tensor> ReadIdx(const std::string& path);

}  // namespace qat

#endif  // QAT_IDX_H_
