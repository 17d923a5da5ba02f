#include "passes/insert_qdq.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/int4_packing.h"
#include "core/onnx_tensor.h"
#include "graph/graph_editor.h"
#include "graph/graph_index.h"
#include "passes/node_selection.h"
#include "passes/stored_weights.h"
#include "qat/status_macros.h"
#include "qat/quant_params.h"
#include "qat/tensor.h"

namespace qat {
namespace passes {
namespace {

using training::AttrInt;
using training::GraphEditor;

// One quantization grid per channel (or one).
struct Grid {
  QuantType type;
  QuantRange range;
  std::vector<float> scale;
  std::vector<int32_t> zero_point;
  int64_t axis = -1;  // -1: per tensor
  std::vector<int64_t> block_shape;  // per block (opset 21): the parameters' shape
  int64_t block_size = 0;
};

int32_t OnnxTypeOf(QuantType t) {
  switch (t) {
    case QuantType::kUInt8:
    case QuantType::kUInt4:
      return onnx::TensorProto::UINT8;
    default:
      return onnx::TensorProto::INT8;
  }
}

// The scale and zero-point initializers of a grid.
// packed_4bit: the zero point as packed INT4, for an INT4 stored weight.
std::pair<std::string, std::string> GridInitializers(GraphEditor& g, const Grid& grid,
                                                     const std::string& base,
                                                     bool packed_4bit = false) {
  const bool per_channel = grid.axis >= 0;
  std::vector<int64_t> dims;
  if (per_channel) dims.push_back(static_cast<int64_t>(grid.scale.size()));
  if (grid.block_size > 0) dims = grid.block_shape;
  const std::string scale =
      g.Initializer(training::MakeFloatTensor(base + "_scale", dims, grid.scale));
  onnx::TensorProto zp;
  zp.set_name(base + "_zero_point");
  zp.set_data_type(OnnxTypeOf(grid.type));
  for (int64_t d : dims) zp.add_dims(d);
  std::string raw;
  for (int32_t z : grid.zero_point) raw.push_back(static_cast<char>(z));
  if (packed_4bit) {
    zp.set_data_type(OnnxTypeOf(grid.type) == onnx::TensorProto::INT8 ? kOnnxInt4 : kOnnxUInt4);
    raw = PackInt4(reinterpret_cast<const uint8_t*>(raw.data()),
                   static_cast<int64_t>(raw.size()));
  }
  zp.set_raw_data(raw);
  return {scale, g.Initializer(zp)};
}

std::vector<onnx::AttributeProto> AxisAttr(const Grid& grid) {
  if (grid.axis < 0) return {};
  if (grid.block_size > 0) {
    return {AttrInt("axis", grid.axis), AttrInt("block_size", grid.block_size)};
  }
  return {AttrInt("axis", grid.axis)};
}

// The reduction axis of a MatMul or Gemm weight, along which blocks run
// (the other axis of WeightChannelAxis); -1 for other ops.
int64_t ReductionAxis(const std::string& op_type, bool trans_b) {
  if (op_type == "MatMul") return 0;
  if (op_type == "Gemm") return trans_b ? 1 : 0;
  return -1;
}

// Per-block symmetric grids of a 2-D weight from its blocks' min and max.
absl::Status FillBlockGrid(const Tensor& w, Grid* grid) {
  QAT_ASSIGN_OR_RETURN(grid->block_shape,
                       BlockedParamShape(w.shape(), grid->axis, grid->block_size));
  const int64_t rows = w.dim(0), cols = w.dim(1);
  std::vector<float> lo(grid->block_shape[0] * grid->block_shape[1], 0.0f);
  std::vector<float> hi(lo.size(), 0.0f);
  const auto v = w.values<float>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t e = grid->axis == 0 ? (r / grid->block_size) * cols + c
                                        : r * grid->block_shape[1] + c / grid->block_size;
      lo[e] = std::min(lo[e], v[r * cols + c]);
      hi[e] = std::max(hi[e], v[r * cols + c]);
    }
  }
  for (size_t e = 0; e < lo.size(); ++e) {
    QAT_ASSIGN_OR_RETURN(QuantParams p, ComputeQuantParams(lo[e], hi[e], grid->range, true));
    grid->scale.push_back(p.scale);
    grid->zero_point.push_back(p.zero_point);
  }
  return absl::OkStatus();
}

// Q -> [Clip] -> DQ from `x`, with the DQ output named `out`.
void EmitPair(GraphEditor& g, const std::string& x, const Grid& grid,
              const std::string& out) {
  const auto [scale, zp] = GridInitializers(g, grid, x);
  std::string q = g.Add("QuantizeLinear", {x, scale, zp}, x + "_quantized", AxisAttr(grid));
  const QuantRange full = QuantTypeRange(grid.type == QuantType::kUInt4 ? QuantType::kUInt8
                                         : grid.type == QuantType::kInt4 ? QuantType::kInt8
                                                                         : grid.type);
  if (grid.range.quant_min != full.quant_min || grid.range.quant_max != full.quant_max) {
    // A range narrower than the storage type (4-bit, reduce_range): clip.
    onnx::TensorProto lo, hi;
    for (auto* t : {&lo, &hi}) t->set_data_type(OnnxTypeOf(grid.type));
    lo.set_name(x + "_qmin");
    hi.set_name(x + "_qmax");
    lo.set_raw_data(std::string(1, static_cast<char>(grid.range.quant_min)));
    hi.set_raw_data(std::string(1, static_cast<char>(grid.range.quant_max)));
    q = g.Add("Clip", {q, g.Initializer(lo), g.Initializer(hi)}, x + "_clipped");
  }
  g.AddNode("DequantizeLinear", "", {q, scale, zp}, {out}, AxisAttr(grid));
}

// Per-channel (or per-tensor) min and max of a float tensor along `axis`.
void ChannelRanges(const Tensor& w, int64_t axis, std::vector<float>* lo,
                   std::vector<float>* hi) {
  const int64_t channels = axis < 0 ? 1 : w.dim(axis);
  int64_t inner = 1;
  for (int64_t a = axis + 1; axis >= 0 && a < w.rank(); ++a) inner *= w.dim(a);
  lo->assign(channels, 0.0f);
  hi->assign(channels, 0.0f);
  const auto v = w.values<float>();
  for (size_t i = 0; i < v.size(); ++i) {
    const int64_t c = axis < 0 ? 0 : (static_cast<int64_t>(i) / inner) % channels;
    (*lo)[c] = std::min((*lo)[c], v[i]);
    (*hi)[c] = std::max((*hi)[c], v[i]);
  }
}

}  // namespace

absl::StatusOr<bool> InsertQdqPass::RunImpl(onnx::ModelProto* model) {
  GraphEditor g(model);
  onnx::GraphProto* graph = &g.graph();
  const bool needs_axis = options_.per_channel || options_.weight_bits == 4;
  if (g.opset() < (needs_axis ? 13 : 10)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "quantizing needs opset ", needs_axis ? 13 : 10,
        " or newer (QuantizeLinear", needs_axis ? " with axis and Clip on int8" : "",
        "); the model imports opset ", g.opset()));
  }
  if (options_.block_size != 0 &&
      (options_.block_size < 0 || options_.weight_bits != 4 || g.opset() < 21)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "block-wise weights need block_size > 0, 4-bit weights and opset 21 (the quantize "
        "stage upgrades to it); got block_size ", options_.block_size, ", ",
        options_.weight_bits, "-bit weights, opset ", g.opset()));
  }
  if (options_.weight_bits != 8 && options_.weight_bits != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight bits must be 8 or 4, got ", options_.weight_bits));
  }
  if (options_.activation_type != QuantType::kUInt8 &&
      options_.activation_type != QuantType::kInt8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "activations must be uint8 or int8 at opset <= 20, got ",
        QuantTypeName(options_.activation_type)));
  }
  QAT_ASSIGN_OR_RETURN(
      quantization::NodeSelection selection,
      quantization::NodeSelection::Create(*graph, options_.op_types, options_.include_nodes,
                                          options_.exclude_nodes));
  // Weights are initializers (also those a graph input may override, as
  // ONNX Runtime's quantizer takes them); activations are the rest.
  const graph::GraphIndex index(*graph);

  // Activation grids from the table.
  auto activation_grid = [&](const std::string& t) -> absl::StatusOr<Grid> {
    const CalibrationEntry* e = table_.Find(t);
    if (e == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", t, "' needs quantization but has no entry in the calibration table"));
    }
    if (e->axis.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "activation '", t, "' has a per-channel table entry; activations are per tensor"));
    }
    Grid grid;
    grid.type = options_.activation_type;
    grid.range = QuantRangeFor(grid.type, options_.symmetric_activations, false);
    if (e->type == grid.type && e->symmetric == options_.symmetric_activations &&
        !e->reduce_range) {
      grid.scale = e->scale;
      grid.zero_point = e->zero_point;
      return grid;
    }
    QAT_ASSIGN_OR_RETURN(QuantParams p, ComputeQuantParams(e->rmin[0], e->rmax[0], grid.range,
                                                           options_.symmetric_activations));
    grid.scale = {p.scale};
    grid.zero_point = {p.zero_point};
    return grid;
  };

  // Weight grids from the values (or a weight entry of the table).
  auto weight_grid = [&](const std::string& w, const Tensor& value, int64_t axis,
                         int64_t block_axis) -> absl::StatusOr<Grid> {
    Grid grid;
    grid.type = options_.weight_bits == 4 ? QuantType::kInt4 : QuantType::kInt8;
    grid.range = QuantRangeFor(grid.type, /*symmetric=*/true, options_.reduce_range);
    grid.axis = options_.per_channel ? axis : -1;
    if (options_.block_size > 0 && block_axis >= 0 && value.rank() == 2) {
      grid.axis = block_axis;
      grid.block_size = options_.block_size;
      QAT_RETURN_IF_ERROR(FillBlockGrid(value, &grid));
      return grid;
    }
    // A weight entry of the table wins when it matches the requested form.
    if (const CalibrationEntry* e = table_.Find(w);
        e != nullptr && e->role == TensorRole::kWeight &&
        e->axis.has_value() == options_.per_channel &&
        e->bits() == options_.weight_bits) {
      grid.type = e->type;
      grid.range = e->quant_range();
      grid.scale = e->scale;
      grid.zero_point = e->zero_point;
      grid.axis = e->axis.has_value() ? *e->axis : -1;
      return grid;
    }
    std::vector<float> lo, hi;
    ChannelRanges(value, grid.axis, &lo, &hi);
    for (size_t c = 0; c < lo.size(); ++c) {
      QAT_ASSIGN_OR_RETURN(QuantParams p, ComputeQuantParams(lo[c], hi[c], grid.range, true));
      grid.scale.push_back(p.scale);
      grid.zero_point.push_back(p.zero_point);
    }
    return grid;
  };

  std::map<std::string, std::string> done_activations;  // tensor -> name to read
  std::map<std::string, std::string> done_weights;      // key -> DQ output
  // Quantizes activation t; returns the name consumers should read.
  auto quantize_activation = [&](const std::string& t) -> absl::StatusOr<std::string> {
    if (auto it = done_activations.find(t); it != done_activations.end()) return it->second;
    QAT_ASSIGN_OR_RETURN(Grid grid, activation_grid(t));
    std::string read = t;
    if (index.IsGraphInput(t) && !index.IsInitializer(t)) {
      read = g.FreshName(t + "_dequantized");
      EmitPair(g, t, grid, read);
    } else {
      // Rename the producer's output so that `t` becomes the DQ output.
      const int producer = index.Producer(t);
      if (producer < 0) {
        return absl::InvalidArgumentError(absl::StrCat("no node produces '", t, "'"));
      }
      const std::string pre = g.FreshName(t + "_prequant");
      for (auto& o : *graph->mutable_node(producer)->mutable_output()) {
        if (o == t) o = pre;
      }
      if (auto s = g.ShapeOf(t); s.has_value()) g.SetShape(pre, *s);
      EmitPair(g, pre, grid, t);
    }
    done_activations[t] = read;
    return read;
  };

  auto quantize_weight = [&](const std::string& w, int64_t axis,
                             int64_t block_axis) -> absl::StatusOr<std::string> {
    const std::string key = absl::StrCat(w, "#", options_.per_channel ? axis : -1, "#",
                                         options_.block_size > 0 ? block_axis : -1);
    if (auto it = done_weights.find(key); it != done_weights.end()) return it->second;
    QAT_ASSIGN_OR_RETURN(Tensor value, TensorFromProto(*index.FindInitializer(w)));
    if (value.dtype() != DataType::kFloat32) return w;  // not a float weight
    if (options_.per_channel && (axis < 0 || axis >= value.rank())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weight '", w, "' of rank ", value.rank(), " has no channel axis ", axis));
    }
    QAT_ASSIGN_OR_RETURN(Grid grid, weight_grid(w, value, axis, block_axis));
    const std::string out = g.FreshName(w + "_dequantized");
    if (!options_.weights_as_int8) {
      EmitPair(g, w, grid, out);
    } else {
      // Store the integers; only DequantizeLinear remains.
      StorageGrid storage;
      storage.scale = grid.scale;
      storage.zero_point.assign(grid.zero_point.begin(), grid.zero_point.end());
      if (grid.axis >= 0) storage.axis = grid.axis;
      storage.range = grid.range;
      storage.block_size = grid.block_size;
      storage.packed_4bit = grid.block_size > 0;  // at opset 21: INT4, two per byte
      storage.storage = grid.type == QuantType::kUInt4 || grid.type == QuantType::kUInt8
                            ? DataType::kUInt8
                            : DataType::kInt8;
      QAT_ASSIGN_OR_RETURN(const std::string qname, AddStoredWeight(g, value, storage, w));
      const auto [scale, zp] = GridInitializers(g, grid, w, storage.packed_4bit);
      g.AddNode("DequantizeLinear", "", {qname, scale, zp}, {out}, AxisAttr(grid));
    }
    done_weights[key] = out;
    return out;
  };

  bool changed = false;
  const int original = graph->node_size();
  for (int k = 0; k < original; ++k) {
    if (!selection.Selects(graph->node(k))) continue;
    const onnx::NodeProto node = graph->node(k);  // copy: the graph grows
    const int data_inputs = quantization::NodeSelection::kDataInputs;
    for (int i = 0; i < std::min(data_inputs, node.input_size()); ++i) {
      const std::string& in = node.input(i);
      if (in.empty()) continue;
      std::string read;
      if (index.IsInitializer(in)) {
        const bool trans_b = training::GetAttrInt(node, "transB", 0) != 0;
        const int64_t axis = WeightChannelAxis(node.op_type(), trans_b);
        // Blocks only for B, the weight operand (input 1).
        const int64_t block_axis = i == 1 ? ReductionAxis(node.op_type(), trans_b) : -1;
        QAT_ASSIGN_OR_RETURN(read, quantize_weight(in, axis, block_axis));
      } else {
        QAT_ASSIGN_OR_RETURN(read, quantize_activation(in));
      }
      graph->mutable_node(k)->set_input(i, read);
    }
    if (node.output_size() > 0) {
      QAT_RETURN_IF_ERROR(quantize_activation(node.output(0)).status());
    }
    changed = true;
  }
  QAT_RETURN_IF_ERROR(training::TopologicalSort(graph));
  return changed;
}

int64_t WeightChannelAxis(const std::string& op_type, bool trans_b) {
  if (op_type == "Conv") return 0;
  if (op_type == "MatMul") return 1;
  if (op_type == "Gemm") return trans_b ? 0 : 1;
  return -1;
}

}  // namespace passes

}  // namespace qat
