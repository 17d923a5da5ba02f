#include "passes/fake_quant_to_qdq.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "core/int4_packing.h"
#include "core/onnx_tensor.h"
#include "core/op_schemas.h"
#include "core/uint8_block_scales.h"
#include "graph/graph_editor.h"
#include "graph/graph_index.h"
#include "passes/prune_unused_initializers.h"
#include "passes/stored_weights.h"
#include "qat/fake_quant.h"
#include "qat/quant_range.h"
#include "qat/status_macros.h"
#include "qat/tensor.h"

namespace qat {
namespace passes {

using training::AttrInt;
using training::DescribeNode;
using training::GraphEditor;

absl::StatusOr<bool> FakeQuantToQdqPass::RunImpl(onnx::ModelProto* model) {
  GraphEditor g(model);
  onnx::GraphProto* graph = &g.graph();
  // The nodes are rebuilt below; read constants from a copy.
  const onnx::GraphProto original = *graph;
  const graph::GraphIndex index(original);
  bool changed = false;
  graph->clear_node();
  for (const onnx::NodeProto& n : original.node()) {
    const bool fq = n.op_type() == "FakeQuant" &&
                    (n.domain() == kMicrosoftDomain || n.domain() == kLibqatDomain);
    if (!fq) {
      *graph->add_node() = n;
      continue;
    }
    if (n.output_size() > 1 && !n.output(1).empty() && index.NumUses(n.output(1)) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          DescribeNode(n), "'s mask is still used; export the inference model, "
          "without gradients"));
    }
    QAT_ASSIGN_OR_RETURN(Tensor scale, index.ConstantValue(n.input(1)));
    QAT_ASSIGN_OR_RETURN(Tensor zpf, index.ConstantValue(n.input(2)));
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
    const int64_t block = per_channel ? training::GetAttrInt(n, "block_size", 0) : 0;
    if (block != 0 && config_.opset < 21) {
      return absl::UnimplementedError(absl::StrCat(
          DescribeNode(n), " is block-wise (block_size ", block,
          "), which QuantizeLinear / DequantizeLinear express from opset 21 on; export at "
          "opset 21"));
    }
    // Packed 4-bit storage of a weight (opset 21).
    const QuantRange four = is_signed ? QuantRange::Int4() : QuantRange::UInt4();
    const bool packed = config_.opset >= 21 && config_.int8_weights && index.IsConstant(n.input(0)) &&
                        range.quant_min >= four.quant_min && range.quant_max <= four.quant_max;
    Tensor zp(is_signed ? DataType::kInt8 : DataType::kUInt8, scale.shape());
    for (int64_t c = 0; c < zp.num_elements(); ++c) {
      // A learned zero point is real-valued; it stands for its rounding.
      const float z = RoundZeroPoint(zpf.values<float>()[c], range);
      zpf.values<float>()[c] = z;
      if (is_signed) zp.data<int8_t>()[c] = static_cast<int8_t>(z);
      else zp.data<uint8_t>()[c] = static_cast<uint8_t>(z);
    }
    const std::string x = n.input(0);
    // A packed block-wise weight's 2-D scales as uint8 codes times a step
    // per output channel: when they already are exactly of that form, or
    // snapped to it when the config asks (the weight is then stored on the
    // snapped grid).
    std::optional<Uint8BlockScales> codes;
    if (packed && block != 0 && scale.rank() == 2) {
      const int64_t a = axis < 0 ? axis + 2 : axis;
      codes = ExactUint8BlockScales(scale.values<float>(), scale.dim(0), scale.dim(1), a);
      if (!codes.has_value() && config_.uint8_block_scales) {
        absl::StatusOr<Uint8BlockScales> snapped =
            SnapToUint8BlockScales(scale.values<float>(), scale.dim(0), scale.dim(1), a);
        if (!snapped.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat(DescribeNode(n), ": ", snapped.status().message()));
        }
        codes = *std::move(snapped);
        const std::vector<float> back = DequantizeBlockScales(*codes, scale.dim(0), scale.dim(1));
        std::copy(back.begin(), back.end(), scale.values<float>().begin());
      }
    }
    std::string s_name;
    if (codes.has_value()) {
      Tensor c(DataType::kUInt8, scale.shape());
      std::copy(codes->codes.begin(), codes->codes.end(), c.data<uint8_t>());
      const std::string c_name = g.Initializer(TensorToProto(c, x + "_scale_codes"));
      const std::string step_name = g.Initializer(training::MakeFloatTensor(
          x + "_scale_step", {static_cast<int64_t>(codes->steps.size())}, codes->steps));
      s_name = g.Add("DequantizeLinear", {c_name, step_name}, x + "_scale",
                     {AttrInt("axis", codes->axis)});
    } else {
      s_name = g.Initializer(TensorToProto(scale, x + "_scale"));
    }
    // DequantizeLinear's zero point is optional (0): a packed signed weight
    // with an all-zero one (symmetric) leaves it out.
    bool zero_zp = packed && is_signed;
    for (int64_t c = 0; zero_zp && c < zp.num_elements(); ++c) zero_zp = zp.data<int8_t>()[c] == 0;
    std::string z_name;
    if (zero_zp) {
      // no zero point
    } else if (packed) {
      QAT_ASSIGN_OR_RETURN(onnx::TensorProto z4, TensorToInt4Proto(zp, x + "_zero_point"));
      z_name = g.Initializer(std::move(z4));
    } else {
      z_name = g.Initializer(TensorToProto(zp, x + "_zero_point"));
    }
    std::vector<onnx::AttributeProto> attrs;
    if (per_channel) attrs.push_back(AttrInt("axis", axis));
    if (block != 0) attrs.push_back(AttrInt("block_size", block));
    if (config_.int8_weights && index.IsConstant(x)) {
      // Store the weight quantized: the same arithmetic as FakeQuant.
      QAT_ASSIGN_OR_RETURN(Tensor w, index.ConstantValue(x));
      StorageGrid grid;
      grid.scale.assign(scale.values<float>().begin(), scale.values<float>().end());
      grid.zero_point.assign(zpf.values<float>().begin(), zpf.values<float>().end());
      if (per_channel) grid.axis = axis;
      grid.range = range;
      grid.storage = zp.dtype();
      grid.block_size = block;
      grid.packed_4bit = packed;
      QAT_ASSIGN_OR_RETURN(const std::string q, AddStoredWeight(g, w, grid, x));
      std::vector<std::string> dq_inputs = {q, s_name};
      if (!z_name.empty()) dq_inputs.push_back(z_name);
      g.AddNode("DequantizeLinear", "", dq_inputs, {n.output(0)}, attrs);
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
        qv = g.Add("Clip",
                   {qv, g.Initializer(TensorToProto(lo, x + "_qmin")),
                    g.Initializer(TensorToProto(hi, x + "_qmax"))},
                   x + "_clipped");
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
