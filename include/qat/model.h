// Model: an ONNX model loaded, checked and shape-inferred.
//
// Loading parses the protobuf, runs onnx::checker::check_model and then
// onnx::shape_inference::InferShapes (strict: an inference error is a load
// error).  Any failure comes back as an absl::Status naming the file (or the
// name given for bytes) and, where ONNX says which, the node; nothing throws.
//
// A Model is a value: it may be copied, and it never changes after loading
// (WithOutputs returns a new one).  Its const methods may be called from
// several threads at once.
// Its ONNX protobuf stays inside the library so that this header does not
// depend on ONNX's generated types; the executor reads it from there.
#ifndef QAT_MODEL_H_
#define QAT_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "qat/api.h"
#include "qat/tensor.h"

namespace qat {

// A graph input or output as the model declares it.
struct ValueInfo {
  std::string name;
  DataType dtype = DataType::kUndefined;  // kUndefined: not a supported type
  bool has_shape = false;                 // false: the rank is unknown
  std::vector<int64_t> shape;             // -1 for a dimension not fixed
};

struct ModelLoadOptions {
  bool check = true;         // run onnx::checker::check_model
  bool infer_shapes = true;  // run onnx::shape_inference::InferShapes
};

class QAT_API Model {
 public:
  // Reads an .onnx file.  NotFound when it cannot be opened.
  static absl::StatusOr<Model> Load(const std::string& path,
                                    const ModelLoadOptions& options = {});
  // Parses a serialized ModelProto; `source` names it in error messages.
  static absl::StatusOr<Model> FromBytes(absl::string_view bytes,
                                         const std::string& source = "<bytes>",
                                         const ModelLoadOptions& options = {});

  Model(const Model& other);
  Model& operator=(const Model& other);
  Model(Model&& other) noexcept;
  Model& operator=(Model&& other) noexcept;
  ~Model();

  // The file path or the name given to FromBytes.
  const std::string& source() const;
  // Graph inputs that are not initializers, in declaration order.
  std::vector<ValueInfo> inputs() const;
  std::vector<ValueInfo> outputs() const;
  // The imported opset version of `domain` ("" or "ai.onnx" for the default
  // domain), or -1 when the model does not import it.
  int64_t OpsetVersion(const std::string& domain) const;
  // The model, with inferred shapes, as a serialized ModelProto.
  std::string Serialize() const;

  // Writes Serialize() to `path` atomically (a temporary file, then a
  // rename), so a reader sees the old file or the new one, never a torn
  // one.  PermissionDenied, naming the file, when it cannot be written.
  absl::Status Save(const std::string& path) const;

  // The same model with each of `names` also declared as a graph output
  // (after the existing outputs, in the order given; a name that is an
  // output already is skipped), so that an executor run returns these
  // intermediate values too: calibration observes activations, observe-mode
  // training reads them, a probe collects them.  An added output keeps the
  // type and shape that shape inference found, else it is declared float.
  // NotFound, naming the tensor and the model, for a name that no node
  // produces and that is not a graph input or initializer.  The result is
  // not re-checked (this model passed the checker when it was loaded).
  absl::StatusOr<Model> WithOutputs(const std::vector<std::string>& names) const;

 private:
  friend struct ModelAccess;  // the library's view of the protobuf
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qat

#endif  // QAT_MODEL_H_
