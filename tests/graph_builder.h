// A small builder of ONNX models for tests.
#ifndef QAT_TESTS_GRAPH_BUILDER_H_
#define QAT_TESTS_GRAPH_BUILDER_H_

#include <map>
#include <string>
#include <vector>

#include "core/onnx_tensor.h"
#include "onnx/onnx_pb.h"
#include "qat/executor.h"
#include "qat/model.h"
#include "qat/tensor.h"

namespace qat {

// Builds small models: Input/Output declare values, Node adds a node.
class GraphBuilder {
 public:
  GraphBuilder() {
    model_.set_ir_version(8);
    model_.mutable_graph()->set_name("test");
    AddOpset("", 17);
  }
  GraphBuilder& AddOpset(const std::string& domain, int64_t version) {
    auto* opset = model_.add_opset_import();
    opset->set_domain(domain);
    opset->set_version(version);
    return *this;
  }
  // dims: a number, or -1 for a symbolic "N".
  GraphBuilder& Input(const std::string& name, int elem_type, std::vector<int64_t> dims) {
    Declare(model_.mutable_graph()->add_input(), name, elem_type, dims);
    return *this;
  }
  GraphBuilder& Output(const std::string& name, int elem_type, std::vector<int64_t> dims) {
    Declare(model_.mutable_graph()->add_output(), name, elem_type, dims);
    return *this;
  }
  onnx::NodeProto& Node(const std::string& op, std::vector<std::string> inputs,
                        std::vector<std::string> outputs, const std::string& domain = "") {
    auto* node = model_.mutable_graph()->add_node();
    node->set_op_type(op);
    node->set_domain(domain);
    node->set_name(op + "_" + std::to_string(model_.graph().node_size()));
    for (const auto& i : inputs) node->add_input(i);
    for (const auto& o : outputs) node->add_output(o);
    return *node;
  }
  GraphBuilder& Initializer(const std::string& name, const Tensor& t) {
    *model_.mutable_graph()->add_initializer() = TensorToProto(t, name);
    return *this;
  }
  const onnx::ModelProto& proto() const { return model_; }
  absl::StatusOr<Model> Build(bool check = true) {
    ModelLoadOptions options;
    options.check = check;
    options.infer_shapes = check;
    return Model::FromBytes(model_.SerializeAsString(), "test.onnx", options);
  }

  // Gives `v` a name and a tensor type (dims as for Input).
  static void Declare(onnx::ValueInfoProto* v, const std::string& name, int elem_type,
                      const std::vector<int64_t>& dims) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(elem_type);
    auto* shape = t->mutable_shape();
    for (int64_t d : dims) {
      if (d < 0) shape->add_dim()->set_dim_param("N");
      else shape->add_dim()->set_dim_value(d);
    }
  }

 private:
  onnx::ModelProto model_;
};

// Builds g's model without the checker and runs it once on `feed`.
inline absl::StatusOr<std::map<std::string, Tensor>> RunGraph(
    GraphBuilder& g, const std::map<std::string, Tensor>& feed) {
  auto model = g.Build(/*check=*/false);
  if (!model.ok()) return model.status();
  auto executor = Executor::Create(*model);
  if (!executor.ok()) return executor.status();
  return (*executor)->Run(feed);
}

// Loads `proto` without the checker and shape inference (a hand-built graph
// whose outputs have no declared shape) and runs it once on `feed`.
inline absl::StatusOr<std::map<std::string, Tensor>> RunUncheckedProto(
    const onnx::ModelProto& proto, const std::string& source,
    const std::map<std::string, Tensor>& feed = {}) {
  ModelLoadOptions options;
  options.check = false;
  options.infer_shapes = false;
  auto model = Model::FromBytes(proto.SerializeAsString(), source, options);
  if (!model.ok()) return model.status();
  auto executor = Executor::Create(*model);
  if (!executor.ok()) return executor.status();
  return (*executor)->Run(feed);
}

inline void SetInt(onnx::NodeProto& node, const std::string& name, int64_t value) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

inline void SetInts(onnx::NodeProto& node, const std::string& name,
                    const std::vector<int64_t>& values) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) a->add_ints(v);
}

inline void SetFloat(onnx::NodeProto& node, const std::string& name, float value) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(value);
}

constexpr int kFloat = onnx::TensorProto::FLOAT;
constexpr int kBool = onnx::TensorProto::BOOL;
constexpr int kUint8 = onnx::TensorProto::UINT8;
constexpr int kInt8 = onnx::TensorProto::INT8;

}  // namespace qat

#endif  // QAT_TESTS_GRAPH_BUILDER_H_
