// Reading IDX files, the format of MNIST and Fashion-MNIST.
//
// An IDX file is a big-endian header (two zero bytes, a type code, the rank,
// then one uint32 per dimension) followed by the elements.  Only unsigned
// byte data (type code 0x08) is supported.  gzip-compressed files (.gz) are
// read transparently.
#ifndef QAT_IDX_H_
#define QAT_IDX_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "qat/api.h"
#include "qat/tensor.h"

namespace qat {

// Returns a uint8 tensor with the file's dimensions; InvalidArgument, naming
// the file, for a bad header, a truncated file, or one that holds more data
// than its header declares; NotFound if it is missing; ResourceExhausted when
// the memory cannot be allocated.
//
// The file is streamed: a gzip file is never inflated past the size its
// header declares (one byte more shows trailing data), and memory grows
// with the data actually read, not with what a header claims.
//
// `max_records` > 0 reads only the first that many records (entries of the
// first dimension) and stops there, without reading or checking the rest of
// the file; 0 reads them all.
QAT_API absl::StatusOr<Tensor> ReadIdx(const std::string& path, int64_t max_records = 0);

}  // namespace qat

#endif  // QAT_IDX_H_
