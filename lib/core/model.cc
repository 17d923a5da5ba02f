#include "qat/model.h"

#include <exception>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "qat/status_macros.h"
#include "core/file_util.h"
#include "core/model_internal.h"
#include "core/onnx_tensor.h"
#include "core/op_schemas.h"
#include "core/opset21_check.h"
#include "onnx/checker.h"
#include "onnx/shape_inference/implementation.h"

namespace qat {

ValueInfo ValueInfoFromProto(const onnx::ValueInfoProto& proto) {
  ValueInfo info;
  info.name = proto.name();
  if (!proto.type().has_tensor_type()) return info;
  const auto& tensor_type = proto.type().tensor_type();
  if (IsSupportedDataType(tensor_type.elem_type())) {
    info.dtype = static_cast<DataType>(tensor_type.elem_type());
  }
  if (tensor_type.has_shape()) {
    info.has_shape = true;
    for (const auto& dim : tensor_type.shape().dim()) {
      info.shape.push_back(dim.has_dim_value() ? dim.dim_value() : -1);
    }
  }
  return info;
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(const Model& other)
    : impl_(std::make_unique<Impl>(*other.impl_)) {}
Model& Model::operator=(const Model& other) {
  if (this != &other) *impl_ = *other.impl_;
  return *this;
}
Model::Model(Model&& other) noexcept = default;
Model& Model::operator=(Model&& other) noexcept = default;
Model::~Model() = default;

absl::StatusOr<Model> Model::Load(const std::string& path,
                                  const ModelLoadOptions& options) {
  auto bytes = ReadFileToString(path);
  if (!bytes.ok()) return bytes.status();
  return FromBytes(*bytes, path, options);
}

namespace {
constexpr int64_t kOldestOpset = 1;

// Window attributes that must be positive wherever they appear.  ONNX's
// shape inference divides by them without checking (a stride of 0 is a
// SIGFPE inside libonnx, found by fuzz_model_pipeline), so they are checked
// first, in subgraphs too.
absl::Status CheckWindowAttributes(const onnx::GraphProto& graph, const std::string& source) {
  for (const onnx::NodeProto& node : graph.node()) {
    for (const onnx::AttributeProto& a : node.attribute()) {
      const bool list = a.name() == "strides" || a.name() == "dilations" ||
                        a.name() == "kernel_shape";
      auto bad = [&](int64_t v) {
        return absl::InvalidArgumentError(absl::StrCat(
            "node '", node.name(), "' (", node.op_type(), ") in '", source, "' has ",
            a.name(), " ", v, "; it must be positive"));
      };
      if (list) {
        for (int64_t v : a.ints()) {
          if (v <= 0) return bad(v);
        }
      }
      if (a.name() == "group" && a.has_i() && a.i() <= 0) return bad(a.i());
      if (a.has_g()) QAT_RETURN_IF_ERROR(CheckWindowAttributes(a.g(), source));
      for (const onnx::GraphProto& g : a.graphs()) {
        QAT_RETURN_IF_ERROR(CheckWindowAttributes(g, source));
      }
    }
  }
  return absl::OkStatus();
}

// Gemm's A and B must be 2-D: ONNX's Gemm shape inference reads their
// second dimension without checking the rank (a rank-0 B is a SIGSEGV
// inside libonnx, found by fuzz_model_pipeline), so a declared rank other
// than 2 is refused first, in subgraphs too.
absl::Status CheckGemmRanks(const onnx::GraphProto& graph, const std::string& source) {
  std::map<std::string, int> ranks;  // the ranks the graph declares
  for (const auto* list : {&graph.input(), &graph.value_info(), &graph.output()}) {
    for (const onnx::ValueInfoProto& v : *list) {
      if (v.type().has_tensor_type() && v.type().tensor_type().has_shape()) {
        ranks.emplace(v.name(), v.type().tensor_type().shape().dim_size());
      }
    }
  }
  for (const onnx::TensorProto& t : graph.initializer()) ranks[t.name()] = t.dims_size();
  for (const onnx::NodeProto& node : graph.node()) {
    const bool gemm =
        node.op_type() == "Gemm" && (node.domain().empty() || node.domain() == "ai.onnx");
    for (int i = 0; gemm && i < 2 && i < node.input_size(); ++i) {
      auto it = ranks.find(node.input(i));
      if (it != ranks.end() && it->second != 2) {
        return absl::InvalidArgumentError(absl::StrCat(
            "node '", node.name(), "' (Gemm) in '", source, "': input '", node.input(i),
            "' has rank ", it->second, "; Gemm's A and B must be 2-D"));
      }
    }
    for (const onnx::AttributeProto& a : node.attribute()) {
      if (a.has_g()) QAT_RETURN_IF_ERROR(CheckGemmRanks(a.g(), source));
      for (const onnx::GraphProto& g : a.graphs()) QAT_RETURN_IF_ERROR(CheckGemmRanks(g, source));
    }
  }
  return absl::OkStatus();
}

// Every tensor stored in the graph (initializers, and the tensors of
// Constant nodes and other attributes, in subgraphs too) is checked once
// here, without allocating: dims that overflow, data that is not what the
// dims declare, and external data (whose location nothing confines yet)
// are refused by every stage alike, before any of them copies or runs it.
absl::Status CheckStoredTensors(const onnx::GraphProto& graph, const std::string& source) {
  for (const onnx::TensorProto& init : graph.initializer()) {
    absl::Status status = CheckTensorProto(init);
    if (!status.ok()) {
      return absl::Status(status.code(), absl::StrCat("initializer of '", source, "': ",
                                                      status.message()));
    }
  }
  for (const onnx::NodeProto& node : graph.node()) {
    for (const onnx::AttributeProto& a : node.attribute()) {
      auto check = [&](const onnx::TensorProto& t) -> absl::Status {
        absl::Status status = CheckTensorProto(t);
        if (status.ok()) return status;
        return absl::Status(status.code(),
                            absl::StrCat("attribute '", a.name(), "' of node '", node.name(),
                                         "' (", node.op_type(), ") in '", source,
                                         "': ", status.message()));
      };
      if (a.has_t()) QAT_RETURN_IF_ERROR(check(a.t()));
      for (const onnx::TensorProto& t : a.tensors()) QAT_RETURN_IF_ERROR(check(t));
      if (a.has_g()) QAT_RETURN_IF_ERROR(CheckStoredTensors(a.g(), source));
      for (const onnx::GraphProto& g : a.graphs()) {
        QAT_RETURN_IF_ERROR(CheckStoredTensors(g, source));
      }
    }
  }
  return absl::OkStatus();
}
}  // namespace

absl::Status CheckModelProto(onnx::ModelProto* proto, const std::string& source,
                             const ModelLoadOptions& options) {
  RegisterOpSchemas();  // so that the checker and inference know FakeQuant
  // The default domain's opset must be one that the installed ONNX defines
  // (an opset too old for one op's kernel is reported by the executor, per
  // op), or 21, which libqat checks itself (core/opset21_check.h) because
  // ONNX 1.12 cannot: the exports with packed 4-bit weights.
  bool opset21 = false;
  for (const auto& opset : proto->opset_import()) {
    if (!(opset.domain().empty() || opset.domain() == "ai.onnx")) continue;
    const auto& ranges = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
    const int64_t newest = ranges.count("") ? ranges.at("").second : 17;
    if (opset.version() == kInt4Opset && newest < kInt4Opset) {
      opset21 = true;
      continue;
    }
    if (opset.version() < kOldestOpset || opset.version() > newest) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", source, "' imports ONNX opset ", opset.version(), "; libqat supports opsets ",
          kOldestOpset, " to ", newest));
    }
  }
  QAT_RETURN_IF_ERROR(CheckWindowAttributes(proto->graph(), source));
  QAT_RETURN_IF_ERROR(CheckGemmRanks(proto->graph(), source));
  QAT_RETURN_IF_ERROR(CheckStoredTensors(proto->graph(), source));
  if (opset21) {
    // In place of ONNX's checker and shape inference (which would reject
    // the opset and the INT4 type); the executor infers shapes as it runs.
    return options.check ? CheckOpset21Model(*proto, source) : absl::OkStatus();
  }
  // ONNX 1.12's checker requires a shape field on every graph input and
  // output ("Field 'shape' of 'type' is required but missing"), while
  // ONNX Runtime and the ONNX spec accept a value of unknown rank.  Such
  // values get an empty shape for the check only, and lose it again before
  // shape inference (which then fills in what it can).
  std::vector<onnx::TypeProto_Tensor*> shapeless;
  for (auto* list : {proto->mutable_graph()->mutable_input(),
                     proto->mutable_graph()->mutable_output()}) {
    for (auto& v : *list) {
      if (v.type().has_tensor_type() && !v.type().tensor_type().has_shape()) {
        shapeless.push_back(v.mutable_type()->mutable_tensor_type());
      }
    }
  }
  for (auto* t : shapeless) t->mutable_shape();
  // ONNX reports problems by throwing; nothing may escape the library.
  try {
    if (options.check) onnx::checker::check_model(*proto);
  } catch (const std::exception& e) {
    for (auto* t : shapeless) t->clear_shape();
    return absl::InvalidArgumentError(
        absl::StrCat("'", source, "' failed the ONNX checker: ", e.what()));
  }
  for (auto* t : shapeless) t->clear_shape();
  try {
    if (options.infer_shapes) {
      onnx::ShapeInferenceOptions inference_options;
      inference_options.check_type = false;
      inference_options.error_mode = 1;  // throw on the first node's error
      inference_options.enable_data_propagation = true;
      onnx::shape_inference::InferShapes(*proto, onnx::OpSchemaRegistry::Instance(),
                                         inference_options);
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", source, "' failed ONNX shape inference: ", e.what()));
  }
  return absl::OkStatus();
}

absl::StatusOr<Model> ModelAccess::FromProto(ArenaModelProto proto, const std::string& source,
                                             const ModelLoadOptions& options) {
  auto impl = std::make_unique<Model::Impl>();
  impl->source = source;
  impl->proto = std::move(proto);
  QAT_RETURN_IF_ERROR(CheckModelProto(impl->proto.get(), source, options));
  return Model(std::move(impl));
}

absl::StatusOr<Model> Model::FromBytes(absl::string_view bytes,
                                       const std::string& source,
                                       const ModelLoadOptions& options) {
  ArenaModelProto proto;
  if (!proto->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", source, "' is not a valid ONNX model (protobuf parse failed)"));
  }
  return ModelAccess::FromProto(std::move(proto), source, options);
}

const std::string& Model::source() const { return impl_->source; }

std::vector<ValueInfo> Model::inputs() const {
  const auto& graph = impl_->proto->graph();
  absl::flat_hash_set<std::string> initializers;
  for (const auto& init : graph.initializer()) initializers.insert(init.name());
  std::vector<ValueInfo> result;
  for (const auto& input : graph.input()) {
    if (initializers.count(input.name()) == 0) {
      result.push_back(ValueInfoFromProto(input));
    }
  }
  return result;
}

std::vector<ValueInfo> Model::outputs() const {
  std::vector<ValueInfo> result;
  for (const auto& output : impl_->proto->graph().output()) {
    result.push_back(ValueInfoFromProto(output));
  }
  return result;
}

int64_t Model::OpsetVersion(const std::string& domain) const {
  const std::string wanted = domain == "ai.onnx" ? "" : domain;
  for (const auto& opset : impl_->proto->opset_import()) {
    const std::string d = opset.domain() == "ai.onnx" ? "" : opset.domain();
    if (d == wanted) return opset.version();
  }
  return -1;
}

std::string Model::Serialize() const {
  std::string bytes;
  impl_->proto->SerializeToString(&bytes);
  return bytes;
}

absl::Status Model::Save(const std::string& path) const {
  return WriteFileAtomically(path, Serialize());
}

absl::StatusOr<Model> Model::WithOutputs(const std::vector<std::string>& names) const {
  auto impl = std::make_unique<Impl>(*impl_);
  onnx::GraphProto* g = impl->proto->mutable_graph();
  // What shape inference (or the declaration) says about each value.
  std::map<std::string, const onnx::ValueInfoProto*> infos;
  for (const auto* list : {&g->input(), &g->output(), &g->value_info()}) {
    for (const auto& v : *list) infos.emplace(v.name(), &v);
  }
  std::set<std::string> known;
  for (const auto& v : g->input()) known.insert(v.name());
  for (const auto& t : g->initializer()) known.insert(t.name());
  for (const auto& n : g->node()) known.insert(n.output().begin(), n.output().end());
  std::set<std::string> listed;
  for (const auto& o : g->output()) listed.insert(o.name());
  // The additions are collected first: adding to the outputs may move the
  // ValueInfoProtos that `infos` points at.
  std::vector<onnx::ValueInfoProto> added;
  for (const std::string& name : names) {
    if (known.count(name) == 0) {
      return absl::NotFoundError(absl::StrCat("'", impl_->source, "' has no tensor '", name,
                                              "' to declare as an output"));
    }
    if (!listed.insert(name).second) continue;
    onnx::ValueInfoProto out;
    if (auto it = infos.find(name); it != infos.end()) {
      out = *it->second;
    } else {
      out.set_name(name);
    }
    if (out.type().tensor_type().elem_type() == onnx::TensorProto::UNDEFINED) {
      out.mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    }
    added.push_back(std::move(out));
  }
  for (onnx::ValueInfoProto& out : added) *g->add_output() = std::move(out);
  return Model(std::move(impl));
}

}  // namespace qat
