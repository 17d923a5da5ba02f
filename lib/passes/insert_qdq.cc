#include "passes/insert_qdq.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "core/int4_packing.h"
#include "core/onnx_tensor.h"
#include "core/uint8_block_scales.h"
#include "graph/graph_editor.h"
#include "graph/graph_index.h"
#include "passes/node_selection.h"
#include "passes/stored_weights.h"
#include "qat/kernels/fake_quant_reference.h"
#include "qat/observer.h"
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

// Grids store their values in int8 or uint8.
int32_t OnnxTypeOf(QuantType t) {
  return t == QuantType::kUInt8 ? onnx::TensorProto::UINT8 : onnx::TensorProto::INT8;
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

// The range of one block of weights that gives the least squared FakeQuant
// error on its own values: candidate k in 1..kBlockMseCandidates scales
// [lo, hi] by k / n (as MseRange does), the error summed exactly over the
// values (a block holds 32..128 of them: a histogram would be coarser than
// the values themselves).  The wider candidate wins a tie.
constexpr int kBlockMseCandidates = 100;
absl::StatusOr<std::pair<float, float>> BlockMseRange(const std::vector<float>& values, float lo,
                                                      float hi, QuantRange range,
                                                      bool symmetric) {
  std::pair<float, float> best{lo, hi};
  double best_error = -1.0;
  for (int k = kBlockMseCandidates; k >= 1; --k) {
    const float f = static_cast<float>(k) / kBlockMseCandidates;
    QAT_ASSIGN_OR_RETURN(QuantParams p, ComputeQuantParams(f * lo, f * hi, range, symmetric));
    const kernels::FakeQuantGrid g{p.scale, static_cast<float>(p.zero_point),
                                   static_cast<float>(range.quant_min),
                                   static_cast<float>(range.quant_max)};
    double error = 0.0;
    for (float v : values) {
      bool inside = false;
      const double d = static_cast<double>(kernels::FakeQuantElement(v, g, &inside)) - v;
      error += d * d;
    }
    if (best_error < 0 || error < best_error) {
      best_error = error;
      best = {f * lo, f * hi};
    }
  }
  return best;
}

// Per-block grids of a 2-D weight from its blocks' min and max, or (mse)
// from the range that quantizes each block's values with the least error.
// uint8_scales: the scales snapped to uint8 codes times a power-of-two step
// per output channel (core/uint8_block_scales.h); `name` is for errors.
absl::Status FillBlockGrid(const std::string& name, const Tensor& w, bool symmetric, bool mse,
                           bool uint8_scales, Grid* grid) {
  QAT_ASSIGN_OR_RETURN(grid->block_shape,
                       BlockedParamShape(w.shape(), grid->axis, grid->block_size));
  const int64_t rows = w.dim(0), cols = w.dim(1);
  std::vector<float> lo(grid->block_shape[0] * grid->block_shape[1], 0.0f);
  std::vector<float> hi(lo.size(), 0.0f);
  std::vector<std::vector<float>> blocks(mse ? lo.size() : 0);
  const auto v = w.values<float>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t e = grid->axis == 0 ? (r / grid->block_size) * cols + c
                                        : r * grid->block_shape[1] + c / grid->block_size;
      lo[e] = std::min(lo[e], v[r * cols + c]);
      hi[e] = std::max(hi[e], v[r * cols + c]);
      if (mse) blocks[e].push_back(v[r * cols + c]);
    }
  }
  for (size_t e = 0; e < lo.size(); ++e) {
    if (mse) {
      QAT_ASSIGN_OR_RETURN(std::tie(lo[e], hi[e]),
                           BlockMseRange(blocks[e], lo[e], hi[e], grid->range, symmetric));
    }
    QAT_ASSIGN_OR_RETURN(QuantParams p, ComputeQuantParams(lo[e], hi[e], grid->range, symmetric));
    grid->scale.push_back(p.scale);
    grid->zero_point.push_back(p.zero_point);
  }
  if (!uint8_scales) return absl::OkStatus();
  // All-zero blocks got scale 1 (any scale is exact for them): they must not
  // set their channel's step.
  std::vector<bool> zero_block(lo.size());
  for (size_t e = 0; e < lo.size(); ++e) zero_block[e] = lo[e] == 0.0f && hi[e] == 0.0f;
  absl::StatusOr<Uint8BlockScales> snapped =
      SnapToUint8BlockScales(grid->scale, grid->block_shape[0], grid->block_shape[1],
                             grid->axis, zero_block);
  if (!snapped.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight '", name, "': ", snapped.status().message()));
  }
  grid->scale = DequantizeBlockScales(*snapped, grid->block_shape[0], grid->block_shape[1]);
  if (symmetric) return absl::OkStatus();  // the zero point is the range's middle
  for (size_t e = 0; e < lo.size(); ++e) {
    // Affine: the zero point that puts lo on the grid of the snapped scale.
    const double z = std::nearbyint(grid->range.quant_min -
                                    static_cast<double>(lo[e]) / grid->scale[e]);
    grid->zero_point[e] = static_cast<int32_t>(std::min<double>(
        grid->range.quant_max, std::max<double>(grid->range.quant_min, z)));
  }
  return absl::OkStatus();
}

// Q -> [Clip] -> DQ from `x`, with the DQ output named `out`.
void EmitPair(GraphEditor& g, const std::string& x, const Grid& grid,
              const std::string& out) {
  const auto [scale, zp] = GridInitializers(g, grid, x);
  std::string q = g.Add("QuantizeLinear", {x, scale, zp}, x + "_quantized", AxisAttr(grid));
  if (grid.range != QuantTypeRange(grid.type)) {
    // A range narrower than the storage type (below 8 bits, reduce_range): clip.
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

// The MSE-optimal symmetric clip of each channel of `w` on `range`: at 2
// and 3 bits the min/max range wastes most levels on rare outliers, so the
// weight grid (and LSQ's starting scale) comes from it instead.
absl::Status MseChannelRanges(const Tensor& w, int64_t axis, QuantRange range, bool symmetric,
                              std::vector<float>* lo, std::vector<float>* hi) {
  ObserverOptions o;
  o.method = CalibrationMethod::kMse;
  o.symmetric = symmetric;
  o.mse_quant_range = range;
  if (axis >= 0) o.axis = axis;
  QAT_ASSIGN_OR_RETURN(auto observer, MakeObserver(o));
  QAT_RETURN_IF_ERROR(observer->Observe(w.shape(), w.values<float>()));
  QAT_ASSIGN_OR_RETURN(const std::vector<ObservedRange> ranges, observer->Ranges());
  lo->clear();
  hi->clear();
  for (const ObservedRange& r : ranges) {
    lo->push_back(r.rmin);
    hi->push_back(r.rmax);
  }
  return absl::OkStatus();
}

}  // namespace

bool UsesMseWeightClip(int weight_bits) { return weight_bits <= 3; }

absl::StatusOr<bool> InsertQdqPass::RunImpl(onnx::ModelProto* model) {
  GraphEditor g(model);
  onnx::GraphProto* graph = &g.graph();
  QAT_RETURN_IF_ERROR(ValidateQuantBits(options_.weight_bits, "weight bits"));
  QAT_RETURN_IF_ERROR(ValidateQuantBits(options_.activation_bits, "activation bits"));
  // The table's node overrides, then the options' (which win).
  std::map<std::string, NodeQuantOverride> overrides(table_.node_overrides().begin(),
                                                     table_.node_overrides().end());
  for (const auto& [node, o] : options_.node_overrides) overrides[node] = o;
  std::vector<std::string> exclude = options_.exclude_nodes;
  {
    std::set<std::string> names;
    for (const auto& n : graph->node()) names.insert(n.name());
    for (const auto& [node, o] : overrides) {
      if (names.count(node) == 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "a bit-width override names node '", node, "', which the model does not have"));
      }
      QAT_RETURN_IF_ERROR(ValidateNodeQuantOverride(node, o));
      if (o.keep_float) exclude.push_back(node);
    }
  }
  auto node_bits = [&](const onnx::NodeProto& n, bool weight) {
    const auto it = overrides.find(n.name());
    const int b = it == overrides.end() ? 0
                  : weight             ? it->second.weight_bits
                                       : it->second.activation_bits;
    return b != 0 ? b : weight ? options_.weight_bits : options_.activation_bits;
  };
  bool sub_byte = false;
  for (const auto& n : graph->node()) {
    sub_byte |= node_bits(n, true) != 8 || node_bits(n, false) != 8;  // Clip on int8
  }
  const bool needs_axis = options_.per_channel || sub_byte;
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
  if (options_.uint8_block_scales && options_.block_size == 0 && options_.embedding_bits == 0) {
    return absl::InvalidArgumentError(
        "uint8 block scales apply to block-wise weights: set block_size or embedding_bits");
  }
  if (options_.embedding_bits != 0 && (options_.embedding_bits != 4 || g.opset() < 21)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "embedding weights take 4 bits, block-wise at opset 21 (the quantize stage upgrades to "
        "it); got ", options_.embedding_bits, " bits, opset ", g.opset()));
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
                                          exclude));
  // Weights are initializers (also those a graph input may override, as
  // ONNX Runtime's quantizer takes them); activations are the rest.
  const graph::GraphIndex index(*graph);
  // Each activation's width: the widest of the selected nodes that touch it.
  std::map<std::string, int> activation_bits;
  for (const auto& n : graph->node()) {
    if (!selection.Selects(n)) continue;
    std::vector<std::string> touched(n.input().begin(),
                                     n.input().begin() +
                                         std::min(quantization::NodeSelection::kDataInputs,
                                                  n.input_size()));
    if (n.output_size() > 0) touched.push_back(quantization::NodeSelection::Output(index, n));
    for (const std::string& t : touched) {
      int& b = activation_bits[t];
      b = std::max(b, node_bits(n, false));
    }
  }
  const bool act_signed = options_.activation_type == QuantType::kInt8;

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
    const auto bits = activation_bits.find(t);
    grid.range = QuantRangeForBits(act_signed,
                                   bits != activation_bits.end() ? bits->second
                                                                 : options_.activation_bits,
                                   options_.symmetric_activations, false,
                                   options_.activation_range);
    if (e->type == grid.type && e->symmetric == options_.symmetric_activations &&
        !e->reduce_range && e->quant_range() == grid.range) {
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
                         int bits, int64_t block_axis) -> absl::StatusOr<Grid> {
    Grid grid;
    grid.type = options_.weight_signed ? QuantType::kInt8 : QuantType::kUInt8;
    grid.range = QuantRangeForBits(options_.weight_signed, bits, options_.symmetric_weights,
                                   options_.reduce_range, options_.weight_range);
    grid.axis = options_.per_channel ? axis : -1;
    if (options_.block_size > 0 && bits == 4 && block_axis >= 0 && value.rank() == 2) {
      grid.axis = block_axis;
      grid.block_size = options_.block_size;
      QAT_RETURN_IF_ERROR(FillBlockGrid(w, value, options_.symmetric_weights,
                                        options_.mse_block_weights,
                                        options_.uint8_block_scales, &grid));
      return grid;
    }
    // A weight entry of the table wins when it matches the requested form.
    if (const CalibrationEntry* e = table_.Find(w);
        e != nullptr && e->role == TensorRole::kWeight &&
        e->axis.has_value() == options_.per_channel && e->bits() == bits &&
        e->symmetric == options_.symmetric_weights && e->quant_range() == grid.range &&
        (QuantTypeRange(e->type).quant_min < 0) == options_.weight_signed) {
      grid.scale = e->scale;
      grid.zero_point = e->zero_point;
      grid.axis = e->axis.has_value() ? *e->axis : -1;
      return grid;
    }
    std::vector<float> lo, hi;
    if (UsesMseWeightClip(bits)) {
      QAT_RETURN_IF_ERROR(MseChannelRanges(value, grid.axis, grid.range,
                                           options_.symmetric_weights, &lo, &hi));
    } else {
      ChannelRanges(value, grid.axis, &lo, &hi);
    }
    for (size_t c = 0; c < lo.size(); ++c) {
      QAT_ASSIGN_OR_RETURN(QuantParams p, ComputeQuantParams(lo[c], hi[c], grid.range,
                                                             options_.symmetric_weights));
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

  // The weight `w` (value `value`) on `grid`: Q -> [Clip] -> DQ on the float
  // weight, or the stored integers -> DQ; returns the DQ output.
  auto emit_weight = [&](const std::string& w, const Tensor& value,
                         const Grid& grid) -> absl::StatusOr<std::string> {
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
      storage.storage = grid.type == QuantType::kUInt8 ? DataType::kUInt8 : DataType::kInt8;
      QAT_ASSIGN_OR_RETURN(const std::string qname, AddStoredWeight(g, value, storage, w));
      const auto [scale, zp] = GridInitializers(g, grid, w, storage.packed_4bit);
      g.AddNode("DequantizeLinear", "", {qname, scale, zp}, {out}, AxisAttr(grid));
    }
    return out;
  };

  auto quantize_weight = [&](const std::string& w, int64_t axis,
                             int bits, int64_t block_axis) -> absl::StatusOr<std::string> {
    const std::string key = absl::StrCat(w, "#", options_.per_channel ? axis : -1, "#", bits, "#",
                                         options_.block_size > 0 ? block_axis : -1);
    if (auto it = done_weights.find(key); it != done_weights.end()) return it->second;
    QAT_ASSIGN_OR_RETURN(Tensor value, TensorFromProto(*index.FindInitializer(w)));
    if (value.dtype() != DataType::kFloat32) return w;  // not a float weight
    if (options_.per_channel && (axis < 0 || axis >= value.rank())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weight '", w, "' of rank ", value.rank(), " has no channel axis ", axis));
    }
    QAT_ASSIGN_OR_RETURN(Grid grid, weight_grid(w, value, axis, bits, block_axis));
    QAT_ASSIGN_OR_RETURN(const std::string out, emit_weight(w, value, grid));
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
        QAT_ASSIGN_OR_RETURN(read, quantize_weight(in, axis, node_bits(node, true), block_axis));
      } else {
        QAT_ASSIGN_OR_RETURN(read, quantize_activation(in));
      }
      graph->mutable_node(k)->set_input(i, read);
    }
    if (node.output_size() > 0) {
      QAT_RETURN_IF_ERROR(
          quantize_activation(quantization::NodeSelection::Output(index, node)).status());
    }
    changed = true;
  }
  // Embeddings: the table of a Gather (axis 0, a rank-2 float initializer)
  // at embedding_bits, per block along the embedding dimension (axis 1).
  if (options_.embedding_bits != 0) {
    const std::set<std::string> skipped(exclude.begin(), exclude.end());
    const int64_t block = options_.block_size > 0 ? options_.block_size : kEmbeddingBlockSize;
    for (int k = 0; k < graph->node_size(); ++k) {
      const onnx::NodeProto node = graph->node(k);
      if (node.op_type() != "Gather" || !node.domain().empty() || node.input_size() < 1 ||
          skipped.count(node.name()) > 0 || training::GetAttrInt(node, "axis", 0) != 0 ||
          !index.IsInitializer(node.input(0))) {
        continue;
      }
      const std::string& w = node.input(0);
      const std::string key = absl::StrCat(w, "#embedding");
      std::string read;
      if (auto it = done_weights.find(key); it != done_weights.end()) {
        read = it->second;
      } else {
        QAT_ASSIGN_OR_RETURN(Tensor value, TensorFromProto(*index.FindInitializer(w)));
        if (value.dtype() != DataType::kFloat32 || value.rank() != 2) continue;
        Grid grid;
        grid.type = options_.weight_signed ? QuantType::kInt8 : QuantType::kUInt8;
        grid.range = QuantRangeForBits(options_.weight_signed, options_.embedding_bits,
                                       options_.symmetric_weights, false, options_.weight_range);
        grid.axis = 1;
        grid.block_size = block;
        QAT_RETURN_IF_ERROR(FillBlockGrid(w, value, options_.symmetric_weights,
                                          options_.mse_block_weights,
                                          options_.uint8_block_scales, &grid));
        QAT_ASSIGN_OR_RETURN(read, emit_weight(w, value, grid));
        done_weights[key] = read;
      }
      graph->mutable_node(k)->set_input(0, read);
      changed = true;
    }
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
