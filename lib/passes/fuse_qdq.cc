#include "passes/fuse_qdq.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/op_schemas.h"
#include "passes/fold_constants.h"
#include "qat/fake_quant.h"
#include "qat/kernels/fake_quant_reference.h"
#include "qat/quant_range.h"
#include "qat/status_macros.h"
#include "qat/tensor.h"
#include "graph/graph_editor.h"

namespace qat {
namespace passes {
namespace {

using training::AttrInt;
using training::DescribeNode;
using training::GraphEditor;

bool IsOp(const onnx::NodeProto& n, const char* op) {
  return n.op_type() == op && (n.domain().empty() || n.domain() == "ai.onnx");
}

// Constant values of the graph: initializers and Constant nodes' outputs.
class Constants {
 public:
  explicit Constants(const onnx::GraphProto& g) {
    std::set<std::string> inputs;
    for (const auto& in : g.input()) inputs.insert(in.name());
    for (const auto& t : g.initializer()) {
      if (inputs.count(t.name()) == 0) protos_[t.name()] = &t;  // not overridable
    }
    for (const auto& n : g.node()) {
      if (!IsOp(n, "Constant") || n.output_size() != 1) continue;
      for (const auto& a : n.attribute()) {
        if (a.name() == "value" && a.has_t()) protos_[n.output(0)] = &a.t();
      }
    }
  }
  bool Has(const std::string& name) const { return protos_.count(name) != 0; }
  absl::StatusOr<Tensor> Get(const std::string& name) const {
    return ParseTensorProto(protos_.at(name)->SerializeAsString());
  }

 private:
  std::map<std::string, const onnx::TensorProto*> protos_;
};

QuantRange StorageRange(DataType t) {
  return t == DataType::kInt8 ? QuantRange::Int8() : QuantRange::UInt8();
}

// Integer values of an int8/uint8 tensor as floats.
std::vector<float> AsFloats(const Tensor& t) {
  std::vector<float> v;
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    v.push_back(t.dtype() == DataType::kInt8 ? static_cast<float>(t.data<int8_t>()[i])
                                             : static_cast<float>(t.data<uint8_t>()[i]));
  }
  return v;
}

}  // namespace

absl::StatusOr<bool> FuseQdqToFakeQuantPass::RunImpl(onnx::ModelProto* model) {
  GraphEditor g(model);
  onnx::GraphProto* graph = &g.graph();
  const Constants constants(*graph);
  std::map<std::string, int> producer;
  std::map<std::string, int> uses;
  for (int k = 0; k < graph->node_size(); ++k) {
    for (const auto& o : graph->node(k).output()) producer[o] = k;
    for (const auto& i : graph->node(k).input()) ++uses[i];
  }
  for (const auto& o : graph->output()) ++uses[o.name()];
  auto only_use = [&](const std::string& v) { return uses[v] == 1; };

  std::set<int> removed;
  std::map<int, onnx::NodeProto> replacement;  // at the Q node's position
  bool per_channel_seen = false, per_tensor_seen = false;
  for (int k = 0; k < graph->node_size(); ++k) {
    const onnx::NodeProto& dq = graph->node(k);
    if (!IsOp(dq, "DequantizeLinear")) continue;
    auto p = producer.find(dq.input(0));
    if (p == producer.end()) continue;  // a stored (int8) weight: not a pair
    int clip = -1, q = p->second;
    if (IsOp(graph->node(q), "Clip")) {
      clip = q;
      auto pq = producer.find(graph->node(clip).input(0));
      if (pq == producer.end()) continue;
      q = pq->second;
    }
    const onnx::NodeProto& qn = graph->node(q);
    if (!IsOp(qn, "QuantizeLinear")) continue;
    if (!only_use(qn.output(0)) || (clip >= 0 && !only_use(graph->node(clip).output(0)))) {
      warnings_.push_back(absl::StrCat(DescribeNode(qn),
                                       " has consumers besides its DequantizeLinear; left as is"));
      continue;
    }
    // Scale and zero point: constants, and the same for Q and DQ.
    for (const onnx::NodeProto* n : {&qn, &dq}) {
      for (int i = 1; i < std::min(3, n->input_size()); ++i) {
        if (!n->input(i).empty() && !constants.Has(n->input(i))) {
          return absl::InvalidArgumentError(absl::StrCat(
              DescribeNode(*n), " has a non-constant ", i == 1 ? "scale" : "zero point",
              " '", n->input(i), "'; FakeQuant needs constants"));
        }
      }
    }
    QAT_ASSIGN_OR_RETURN(Tensor scale, constants.Get(qn.input(1)));
    QAT_ASSIGN_OR_RETURN(Tensor dq_scale, constants.Get(dq.input(1)));
    const bool has_zp = qn.input_size() > 2 && !qn.input(2).empty();
    Tensor zp(DataType::kUInt8, scale.shape());  // absent: uint8 zeros
    if (has_zp) {
      QAT_ASSIGN_OR_RETURN(zp, constants.Get(qn.input(2)));
    }
    if (zp.dtype() != DataType::kInt8 && zp.dtype() != DataType::kUInt8) {
      return absl::UnimplementedError(absl::StrCat(
          DescribeNode(qn), " quantizes to ", DataTypeName(zp.dtype()),
          "; FakeQuant fusion supports int8 and uint8"));
    }
    if (scale.dtype() != DataType::kFloat32 || dq_scale.dtype() != DataType::kFloat32 ||
        scale.values<float>().size() != dq_scale.values<float>().size() ||
        !std::equal(scale.values<float>().begin(), scale.values<float>().end(),
                    dq_scale.values<float>().begin())) {
      return absl::InvalidArgumentError(absl::StrCat(
          DescribeNode(qn), " and ", DescribeNode(dq), " disagree on the scale"));
    }
    QuantRange range = StorageRange(zp.dtype());
    if (clip >= 0) {
      const onnx::NodeProto& c = graph->node(clip);
      for (int i : {1, 2}) {
        if (c.input_size() <= i || c.input(i).empty()) continue;
        if (!constants.Has(c.input(i))) {
          return absl::InvalidArgumentError(
              absl::StrCat(DescribeNode(c), " has a non-constant bound"));
        }
        QAT_ASSIGN_OR_RETURN(Tensor b, constants.Get(c.input(i)));
        if (b.num_elements() != 1 || (b.dtype() != DataType::kInt8 && b.dtype() != DataType::kUInt8)) {
          return absl::InvalidArgumentError(
              absl::StrCat(DescribeNode(c), " bounds must be int8/uint8 scalars"));
        }
        const int32_t v = static_cast<int32_t>(AsFloats(b)[0]);
        if (i == 1) range.quant_min = std::max(range.quant_min, v);
        if (i == 2) range.quant_max = std::min(range.quant_max, v);
      }
    }
    const bool per_tensor = scale.num_elements() == 1;
    onnx::NodeProto fq;
    fq.set_op_type("FakeQuant");
    fq.set_domain(per_tensor ? kMicrosoftDomain : kLibqatDomain);
    fq.set_name(g.FreshName(qn.name().empty() ? "FakeQuant" : qn.name() + "_fake_quant"));
    const std::string base = qn.input(0);
    const std::vector<int64_t> dims = per_tensor ? std::vector<int64_t>{}
                                                 : std::vector<int64_t>{scale.num_elements()};
    const std::vector<float> s(scale.values<float>().begin(), scale.values<float>().end());
    fq.add_input(qn.input(0));
    fq.add_input(g.Initializer(training::MakeFloatTensor(base + "_fq_scale", dims, s)));
    fq.add_input(g.Initializer(training::MakeFloatTensor(base + "_fq_zero_point", dims, AsFloats(zp))));
    fq.add_output(dq.output(0));
    fq.add_output(g.FreshName(dq.output(0) + "_mask"));
    *fq.add_attribute() = AttrInt("quant_min", range.quant_min);
    *fq.add_attribute() = AttrInt("quant_max", range.quant_max);
    if (!per_tensor) *fq.add_attribute() = AttrInt("axis", training::GetAttrInt(qn, "axis", 1));
    (per_tensor ? per_tensor_seen : per_channel_seen) = true;
    replacement[q] = fq;
    removed.insert(k);
    if (clip >= 0) removed.insert(clip);
  }
  if (replacement.empty()) return false;
  google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
  for (int k = 0; k < graph->node_size(); ++k) {
    if (auto it = replacement.find(k); it != replacement.end()) {
      *nodes.Add() = it->second;
    } else if (removed.count(k) == 0) {
      *nodes.Add() = graph->node(k);
    }
  }
  *graph->mutable_node() = nodes;
  if (per_tensor_seen) g.EnsureOpset(kMicrosoftDomain, 1);
  if (per_channel_seen) g.EnsureOpset(kLibqatDomain, 1);
  PruneUnusedInitializers(graph);
  return true;
}

absl::StatusOr<bool> FakeQuantToQdqPass::RunImpl(onnx::ModelProto* model) {
  GraphEditor g(model);
  onnx::GraphProto* graph = &g.graph();
  // The nodes are rebuilt below; read constants from a copy.
  const onnx::GraphProto original = *graph;
  const Constants constants(original);
  std::set<std::string> used;
  for (const auto& n : original.node()) used.insert(n.input().begin(), n.input().end());
  for (const auto& o : original.output()) used.insert(o.name());
  bool changed = false;
  graph->clear_node();
  for (const onnx::NodeProto& n : original.node()) {
    const bool fq = n.op_type() == "FakeQuant" &&
                    (n.domain() == kMicrosoftDomain || n.domain() == kLibqatDomain);
    if (!fq) {
      *graph->add_node() = n;
      continue;
    }
    if (n.output_size() > 1 && !n.output(1).empty() && used.count(n.output(1)) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          DescribeNode(n), "'s mask is still used; export the inference model, "
          "without gradients"));
    }
    QAT_ASSIGN_OR_RETURN(Tensor scale, constants.Get(n.input(1)));
    QAT_ASSIGN_OR_RETURN(Tensor zpf, constants.Get(n.input(2)));
    const QuantRange range{static_cast<int32_t>(training::GetAttrInt(n, "quant_min", 0)),
                           static_cast<int32_t>(training::GetAttrInt(n, "quant_max", 255))};
    const bool is_signed = range.quant_min < 0;
    const QuantRange storage = is_signed ? QuantRange::Int8() : QuantRange::UInt8();
    if (range.quant_min < storage.quant_min || range.quant_max > storage.quant_max) {
      return absl::UnimplementedError(absl::StrCat(
          DescribeNode(n), " has range [", range.quant_min, ", ", range.quant_max,
          "], wider than int8/uint8 storage"));
    }
    const bool per_channel = n.domain() == kLibqatDomain;
    const int64_t axis = per_channel ? training::GetAttrInt(n, "axis", 0) : -1;
    Tensor zp(is_signed ? DataType::kInt8 : DataType::kUInt8, scale.shape());
    for (int64_t c = 0; c < zp.num_elements(); ++c) {
      // A learned zero point is real-valued; it stands for its rounding.
      const float z = RoundZeroPoint(zpf.values<float>()[c], range);
      zpf.values<float>()[c] = z;
      if (is_signed) zp.data<int8_t>()[c] = static_cast<int8_t>(z);
      else zp.data<uint8_t>()[c] = static_cast<uint8_t>(z);
    }
    const std::string x = n.input(0);
    QAT_ASSIGN_OR_RETURN(std::string sb, SerializeTensorProto(scale, x + "_scale"));
    QAT_ASSIGN_OR_RETURN(std::string zb, SerializeTensorProto(zp, x + "_zero_point"));
    onnx::TensorProto st, zt;
    st.ParseFromString(sb);
    zt.ParseFromString(zb);
    const std::string s_name = g.Initializer(st), z_name = g.Initializer(zt);
    std::vector<onnx::AttributeProto> attrs;
    if (per_channel) attrs.push_back(AttrInt("axis", axis));
    if (int8_weights_ && constants.Has(x)) {
      // Store the weight quantized: the same arithmetic as FakeQuant.
      QAT_ASSIGN_OR_RETURN(Tensor w, constants.Get(x));
      Tensor q(zp.dtype(), w.shape());
      const int64_t rank = w.rank();
      const int64_t a = axis < 0 ? axis + rank : axis;
      int64_t inner = 1;
      for (int64_t d = a + 1; per_channel && d < rank; ++d) inner *= w.dim(d);
      for (int64_t i = 0; i < w.num_elements(); ++i) {
        const int64_t c = per_channel ? (i / inner) % scale.num_elements() : 0;
        const kernels::FakeQuantGrid grid = {scale.values<float>()[c], zpf.values<float>()[c],
                                             static_cast<float>(range.quant_min),
                                             static_cast<float>(range.quant_max)};
        bool inside;
        const float v = kernels::QuantizeElement(w.values<float>()[i], grid, &inside);
        if (is_signed) q.data<int8_t>()[i] = static_cast<int8_t>(v);
        else q.data<uint8_t>()[i] = static_cast<uint8_t>(v);
      }
      QAT_ASSIGN_OR_RETURN(std::string qb, SerializeTensorProto(q, x + "_quantized"));
      onnx::TensorProto qt;
      qt.ParseFromString(qb);
      g.AddNode("DequantizeLinear", "", {g.Initializer(qt), s_name, z_name}, {n.output(0)}, attrs);
    } else {
      std::string qv = g.Add("QuantizeLinear", {x, s_name, z_name}, x + "_quantized", attrs);
      if (range.quant_min != storage.quant_min || range.quant_max != storage.quant_max) {
        Tensor lo(zp.dtype(), {}), hi(zp.dtype(), {});
        if (is_signed) {
          lo.data<int8_t>()[0] = static_cast<int8_t>(range.quant_min);
          hi.data<int8_t>()[0] = static_cast<int8_t>(range.quant_max);
        } else {
          lo.data<uint8_t>()[0] = static_cast<uint8_t>(range.quant_min);
          hi.data<uint8_t>()[0] = static_cast<uint8_t>(range.quant_max);
        }
        onnx::TensorProto lt, ht;
        lt.ParseFromString(*SerializeTensorProto(lo, x + "_qmin"));
        ht.ParseFromString(*SerializeTensorProto(hi, x + "_qmax"));
        qv = g.Add("Clip", {qv, g.Initializer(lt), g.Initializer(ht)}, x + "_clipped");
      }
      g.AddNode("DequantizeLinear", "", {qv, s_name, z_name}, {n.output(0)}, attrs);
    }
    changed = true;
  }
  if (changed) {
    PruneUnusedInitializers(graph);
    QAT_RETURN_IF_ERROR(training::TopologicalSort(graph));
  }
  return changed;
}

}  // namespace passes
}  // namespace qat
