#include "passes/fuse_qdq_to_fake_quant.h"

#include <map>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/op_schemas.h"
#include "graph/graph_editor.h"
#include "graph/graph_index.h"
#include "graph/rearrange.h"
#include "passes/prune_unused_initializers.h"
#include "qat/quant_range.h"
#include "qat/status_macros.h"
#include "qat/tensor.h"

namespace qat {
namespace passes {
namespace {

using training::AttrInt;
using training::DescribeNode;
using training::GraphEditor;

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
  const graph::GraphIndex index(*graph);
  auto only_use = [&](const std::string& v) { return index.NumUses(v) == 1; };

  std::set<int> removed;
  std::map<int, onnx::NodeProto> replacement;  // at the Q node's position
  bool per_channel_seen = false, per_tensor_seen = false;
  for (int k = 0; k < graph->node_size(); ++k) {
    const onnx::NodeProto& dq = graph->node(k);
    if (!training::IsDefaultOp(dq, "DequantizeLinear")) continue;
    int clip = -1, q = index.Producer(dq.input(0));
    if (q < 0) continue;  // a stored (int8) weight: not a pair
    if (training::IsDefaultOp(graph->node(q), "Clip")) {
      clip = q;
      q = index.Producer(graph->node(clip).input(0));
      if (q < 0) continue;
    }
    const onnx::NodeProto& qn = graph->node(q);
    if (!training::IsDefaultOp(qn, "QuantizeLinear")) continue;
    if (!only_use(qn.output(0)) || (clip >= 0 && !only_use(graph->node(clip).output(0)))) {
      warnings_.push_back(absl::StrCat(DescribeNode(qn),
                                       " has consumers besides its DequantizeLinear; left as is"));
      continue;
    }
    // Scale and zero point: constants, and the same for Q and DQ.
    for (const onnx::NodeProto* n : {&qn, &dq}) {
      for (int i = 1; i < std::min(3, n->input_size()); ++i) {
        if (!n->input(i).empty() && !index.IsConstant(n->input(i))) {
          return absl::InvalidArgumentError(absl::StrCat(
              DescribeNode(*n), " has a non-constant ", i == 1 ? "scale" : "zero point",
              " '", n->input(i), "'; FakeQuant needs constants"));
        }
      }
    }
    QAT_ASSIGN_OR_RETURN(Tensor scale, index.ConstantValue(qn.input(1)));
    QAT_ASSIGN_OR_RETURN(Tensor dq_scale, index.ConstantValue(dq.input(1)));
    const bool has_zp = qn.input_size() > 2 && !qn.input(2).empty();
    Tensor zp(DataType::kUInt8, scale.shape());  // absent: uint8 zeros
    if (has_zp) {
      QAT_ASSIGN_OR_RETURN(zp, index.ConstantValue(qn.input(2)));
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
        if (!index.IsConstant(c.input(i))) {
          return absl::InvalidArgumentError(
              absl::StrCat(DescribeNode(c), " has a non-constant bound"));
        }
        QAT_ASSIGN_OR_RETURN(Tensor b, index.ConstantValue(c.input(i)));
        if (b.num_elements() != 1 || (b.dtype() != DataType::kInt8 && b.dtype() != DataType::kUInt8)) {
          return absl::InvalidArgumentError(
              absl::StrCat(DescribeNode(c), " bounds must be int8/uint8 scalars"));
        }
        const int32_t v = static_cast<int32_t>(AsFloats(b)[0]);
        if (i == 1) range.quant_min = std::max(range.quant_min, v);
        if (i == 2) range.quant_max = std::min(range.quant_max, v);
      }
    }
    // Opset 21's block-wise pairs keep their blocks (ai.libqat block_size).
    const int64_t block = g.opset() >= 21 ? training::GetAttrInt(qn, "block_size", 0) : 0;
    if (block != 0 && (training::GetAttrInt(dq, "block_size", 0) != block ||
                       training::GetAttrInt(dq, "axis", 1) != training::GetAttrInt(qn, "axis", 1))) {
      return absl::InvalidArgumentError(absl::StrCat(
          DescribeNode(qn), " and ", DescribeNode(dq), " disagree on axis or block_size"));
    }
    const bool per_tensor = block == 0 && scale.num_elements() == 1;
    onnx::NodeProto fq;
    fq.set_op_type("FakeQuant");
    fq.set_domain(per_tensor ? kMicrosoftDomain : kLibqatDomain);
    fq.set_name(g.FreshName(qn.name().empty() ? "FakeQuant" : qn.name() + "_fake_quant"));
    const std::string base = qn.input(0);
    const std::vector<int64_t> dims =
        block != 0   ? std::vector<int64_t>(scale.shape().begin(), scale.shape().end())
        : per_tensor ? std::vector<int64_t>{}
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
    if (block != 0) *fq.add_attribute() = AttrInt("block_size", block);
    (per_tensor ? per_tensor_seen : per_channel_seen) = true;
    replacement[q] = std::move(fq);
    removed.insert(k);
    if (clip >= 0) removed.insert(clip);
  }
  if (replacement.empty()) return false;
  // Each FakeQuant is appended, then takes its QuantizeLinear's place.
  const int original = graph->node_size();
  std::vector<int> order;
  order.reserve(static_cast<size_t>(original));
  for (int k = 0; k < original; ++k) {
    if (auto it = replacement.find(k); it != replacement.end()) {
      order.push_back(graph->node_size());
      *graph->add_node() = std::move(it->second);
    } else if (removed.count(k) == 0) {
      order.push_back(k);
    }
  }
  graph::Rearrange(graph->mutable_node(), order);
  if (per_tensor_seen) g.EnsureOpset(kMicrosoftDomain, 1);
  if (per_channel_seen) g.EnsureOpset(kLibqatDomain, 1);
  PruneUnusedInitializers(graph);
  return true;
}

}  // namespace passes
}  // namespace qat
