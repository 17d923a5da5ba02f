// The library's access to a Model's ONNX protobuf.
#ifndef QAT_LIB_CORE_MODEL_INTERNAL_H_
#define QAT_LIB_CORE_MODEL_INTERNAL_H_

#include <string>

#include "onnx/onnx_pb.h"
#include "qat/model.h"

namespace qat {

struct Model::Impl {
  onnx::ModelProto proto;
  std::string source;
};

struct ModelAccess {
  static const onnx::ModelProto& Proto(const Model& model) {
    return model.impl_->proto;
  }
};

// Converts a declared value type; kUndefined for a type libqat does not
// support or a value that is not a tensor.
ValueInfo ValueInfoFromProto(const onnx::ValueInfoProto& proto);

}  // namespace qat

#endif  // QAT_LIB_CORE_MODEL_INTERNAL_H_
