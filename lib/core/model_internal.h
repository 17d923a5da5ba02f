// The library's access to a Model's ONNX protobuf.
#ifndef QAT_LIB_CORE_MODEL_INTERNAL_H_
#define QAT_LIB_CORE_MODEL_INTERNAL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "core/arena_model_proto.h"
#include "onnx/onnx_pb.h"
#include "qat/model.h"

namespace qat {

struct Model::Impl {
  Impl() = default;
  Impl(const Impl& other) : proto(*other.proto), source(other.source) {}
  Impl& operator=(const Impl& other) {
    proto = ArenaModelProto(*other.proto);
    source = other.source;
    return *this;
  }

  ArenaModelProto proto;
  std::string source;
};

struct ModelAccess {
  static const onnx::ModelProto& Proto(const Model& model) {
    return *model.impl_->proto;
  }
  // A copy of the model's proto for a pipeline to edit, on its own arena.
  static ArenaModelProto CopyProto(const Model& model) { return ArenaModelProto(Proto(model)); }
  // A Model from a proto the library built, checked and shape-inferred as
  // Model::FromBytes does (as `options` say), without serializing it: the
  // one check at the end of a pass pipeline.
  static absl::StatusOr<Model> FromProto(ArenaModelProto proto, const std::string& source,
                                         const ModelLoadOptions& options = {});
  // The same for a proto built on the heap (copied onto an arena).
  static absl::StatusOr<Model> FromProto(onnx::ModelProto proto, const std::string& source,
                                         const ModelLoadOptions& options = {}) {
    return FromProto(ArenaModelProto(std::move(proto)), source, options);
  }
  // The same for the output of a pass pipeline: its value_info is dropped
  // first, so every shape is inferred anew from the transformed graph.
  static absl::StatusOr<Model> FromTransformedProto(ArenaModelProto proto,
                                                    const std::string& source) {
    proto->mutable_graph()->clear_value_info();
    return FromProto(std::move(proto), source);
  }
};

// What loading checks, on a proto in place: the opset range, the window
// attributes, onnx::checker (options.check) and strict shape inference
// (options.infer_shapes, which writes value_info).  InvalidArgument naming
// `source`.
absl::Status CheckModelProto(onnx::ModelProto* proto, const std::string& source,
                             const ModelLoadOptions& options);

// Converts a declared value type; kUndefined for a type libqat does not
// support or a value that is not a tensor.
ValueInfo ValueInfoFromProto(const onnx::ValueInfoProto& proto);

}  // namespace qat

#endif  // QAT_LIB_CORE_MODEL_INTERNAL_H_
