// The QDQ fusion of qat/qdq_conversion.h on a proto in place, without the
// check that FuseQdqToFakeQuant ends with: prepare builds the training
// graphs from the fused proto at once, and checks the eval model there.
#ifndef QAT_LIB_STAGES_FUSE_QDQ_PAIRS_H_
#define QAT_LIB_STAGES_FUSE_QDQ_PAIRS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "onnx/onnx_pb.h"

namespace qat {

// `warnings` (optional) receives one line per pair left alone.
absl::Status FuseQdqPairs(onnx::ModelProto* proto, std::vector<std::string>* warnings);

}  // namespace qat

#endif  // QAT_LIB_STAGES_FUSE_QDQ_PAIRS_H_
