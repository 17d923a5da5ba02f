#include "passes/decompose.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/onnx_tensor.h"
#include "core/op_schemas.h"
#include "graph/graph_editor.h"
#include "graph/shape_inference.h"
#include "qat/fake_quant.h"
#include "qat/status_macros.h"

namespace qat {
namespace passes {
namespace {

using training::AttrInt;
using training::DescribeNode;
using training::GetAttrFloat;
using training::GetAttrInt;
using training::GraphEditor;
using training::ValueShape;

constexpr int64_t kMinimumOpset = 13;

enum class CustomOp {
  kNone, kFakeQuant, kFakeQuantPerChannel, kFakeQuantGrad, kLsqGrad, kBatchMean
};

CustomOp Classify(const onnx::NodeProto& n) {
  if (n.domain() == kMicrosoftDomain) {
    if (n.op_type() == "FakeQuant") return CustomOp::kFakeQuant;
    if (n.op_type() == "FakeQuantGrad") return CustomOp::kFakeQuantGrad;
  } else if (n.domain() == kLibqatDomain) {
    if (n.op_type() == "FakeQuant") return CustomOp::kFakeQuantPerChannel;
    if (n.op_type() == "FakeQuantLsqGrad") return CustomOp::kLsqGrad;
    if (n.op_type() == "BatchMean") return CustomOp::kBatchMean;
  }
  return CustomOp::kNone;
}

// Output `i` of a node, or "" when absent.
std::string OutputOf(const onnx::NodeProto& n, int i) {
  return i < n.output_size() ? n.output(i) : std::string();
}

// The scale, zero point and range of one node, as values that broadcast
// against X.
struct Grid {
  std::string scale;       // broadcastable (reshaped when per channel)
  std::string zero_point;  // likewise
  std::string qmin, qmax;  // float scalars
};

// Appends the standard ops that replace custom nodes.
class Decomposer {
 public:
  Decomposer(onnx::ModelProto* model, const DecomposeConfig& config)
      : g_(model), config_(config) {}

  absl::Status Rewrite(const onnx::NodeProto& node, CustomOp op) {
    absl::Status s;
    switch (op) {
      case CustomOp::kFakeQuant: s = FakeQuant(node, false); break;
      case CustomOp::kFakeQuantPerChannel: s = FakeQuant(node, true); break;
      case CustomOp::kFakeQuantGrad: s = FakeQuantGrad(node); break;
      case CustomOp::kLsqGrad: s = LsqGrad(node); break;
      case CustomOp::kBatchMean: s = BatchMean(node); break;
      case CustomOp::kNone: break;
    }
    if (s.ok()) return s;
    return absl::Status(s.code(), absl::StrCat(DescribeNode(node), ": ", s.message()));
  }

 private:
  // One standard op; its output is `out` when given (a rewritten node's
  // output keeps its name), a fresh name from `hint` otherwise.
  std::string Op(const std::string& op, std::vector<std::string> inputs,
                 const std::string& hint, const std::string& out = "",
                 std::vector<onnx::AttributeProto> attrs = {}) {
    if (out.empty()) return g_.Add(op, std::move(inputs), hint, std::move(attrs));
    g_.AddNode(op, "", std::move(inputs), {out}, std::move(attrs));
    return out;
  }

  // ai.libqat BatchMean (training-mode BatchNormalization's gradient rule)
  // over one process's batch: ReduceMean over every axis but the channel.
  // The kernel sums in double, ReduceMean in float: equal up to rounding.
  absl::Status BatchMean(const onnx::NodeProto& n) {
    if (n.input_size() < 1 || n.output_size() < 1) {
      return absl::InvalidArgumentError("BatchMean needs one input and one output");
    }
    QAT_ASSIGN_OR_RETURN(ValueShape x, KnownShape(n.input(0), "X"));
    if (x.rank() < 2) return absl::InvalidArgumentError("BatchMean needs X of rank >= 2");
    std::vector<int64_t> axes = {0};
    for (int64_t a = 2; a < x.rank(); ++a) axes.push_back(a);
    Op("Identity", {g_.ReduceMean(n.input(0), axes, true, "batch_mean")}, "", n.output(0));
    return absl::OkStatus();
  }

  // Scalar constants (or shaped [1], for a per-tensor parameter stored as a
  // 1-D tensor), one initializer per value.
  std::string Float(float v) {
    auto [it, fresh] = floats_.try_emplace(v);
    if (fresh) it->second = g_.ConstantFloat(v, "decompose_const");
    return it->second;
  }
  std::string Constant(double v, bool as_double, bool one_d) {
    const auto key = std::make_tuple(v, as_double, one_d);
    auto [it, fresh] = constants_.try_emplace(key);
    if (!fresh) return it->second;
    onnx::TensorProto t;
    t.set_name("decompose_const");
    if (one_d) t.add_dims(1);
    if (as_double) {
      t.set_data_type(onnx::TensorProto::DOUBLE);
      t.add_double_data(v);
    } else {
      t.set_data_type(onnx::TensorProto::FLOAT);
      t.add_float_data(static_cast<float>(v));
    }
    it->second = g_.Initializer(t);
    return it->second;
  }

  absl::StatusOr<ValueShape> KnownShape(const std::string& name, const char* what) {
    std::optional<ValueShape> s = g_.ShapeOf(name);
    if (!s.has_value() || !s->rank_known) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the rank of ", what, " '", name, "' is unknown (shape inference found none)"));
    }
    return *s;
  }

  // The initializer `name` when it is a constant (not overridable by a graph
  // input), else null.
  const onnx::TensorProto* ConstantInitializer(const std::string& name) {
    for (const auto& in : g_.graph().input()) {
      if (in.name() == name) return nullptr;
    }
    for (const auto& t : g_.graph().initializer()) {
      if (t.name() == name) return &t;
    }
    return nullptr;
  }

  // Condition 5: constant parameters are checked as the executor checks them.
  absl::Status ValidateConstants(const onnx::NodeProto& node, QuantRange range) {
    const onnx::TensorProto* sp = ConstantInitializer(node.input(1));
    const onnx::TensorProto* zp = ConstantInitializer(node.input(2));
    if (sp == nullptr || zp == nullptr) return absl::OkStatus();
    QAT_ASSIGN_OR_RETURN(const Tensor scale, TensorFromProto(*sp));
    QAT_ASSIGN_OR_RETURN(const Tensor zero, TensorFromProto(*zp));
    if (scale.dtype() != DataType::kFloat32 || zero.dtype() != DataType::kFloat32 ||
        scale.num_elements() != zero.num_elements()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "scale '", node.input(1), "' and zero point '", node.input(2),
          "' must be float tensors with one value each per channel"));
    }
    for (int64_t c = 0; c < scale.num_elements(); ++c) {
      const FakeQuantParams p{scale.values<float>()[c], zero.values<float>()[c], range};
      if (absl::Status s = ValidateFakeQuantParams(p); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "scale '", node.input(1), "' / zero point '", node.input(2), "' [", c,
            "]: ", s.message()));
      }
    }
    return absl::OkStatus();
  }

  // Scale and zero point shaped to broadcast along X's `axis` (condition 3),
  // and the range as float constants.
  absl::StatusOr<Grid> MakeGrid(const onnx::NodeProto& node, const std::string& x,
                                bool per_channel) {
    if (node.input_size() < 3 || node.input(0).empty() || node.input(1).empty() ||
        node.input(2).empty()) {
      return absl::InvalidArgumentError("needs X, scale and zero_point");
    }
    const QuantRange range{static_cast<int32_t>(GetAttrInt(node, "quant_min", 0)),
                           static_cast<int32_t>(GetAttrInt(node, "quant_max", 255))};
    QAT_RETURN_IF_ERROR(ValidateConstants(node, range));
    Grid grid;
    grid.qmin = Float(static_cast<float>(range.quant_min));
    grid.qmax = Float(static_cast<float>(range.quant_max));
    grid.scale = node.input(1);
    grid.zero_point = node.input(2);
    if (!per_channel) return grid;
    QAT_ASSIGN_OR_RETURN(const int64_t axis, ChannelAxis(node, x));
    QAT_ASSIGN_OR_RETURN(const ValueShape xs, KnownShape(x, "X"));
    if (const int64_t block = GetAttrInt(node, "block_size", 0); block != 0) {
      QAT_ASSIGN_OR_RETURN(const BlockView view, Blocks(x, axis, block));
      grid.scale = RepeatBlocks(grid.scale, view, node.input(1) + "_per_element");
      grid.zero_point = RepeatBlocks(grid.zero_point, view, node.input(2) + "_per_element");
      return grid;
    }
    const int64_t trailing = xs.rank() - 1 - axis;
    if (trailing == 0) return grid;  // 1-D parameters already broadcast on the last axis
    std::vector<int64_t> shape(trailing + 1, 1);
    shape[0] = -1;
    auto [it, fresh] = channel_shapes_.try_emplace(trailing);
    if (fresh) it->second = g_.ConstantInt64s(shape, "decompose_channel_shape");
    grid.scale = Op("Reshape", {grid.scale, it->second}, node.input(1) + "_per_channel");
    grid.zero_point =
        Op("Reshape", {grid.zero_point, it->second}, node.input(2) + "_per_channel");
    return grid;
  }

  // X's static shape cut into blocks along `axis`.
  struct BlockView {
    std::vector<int64_t> dims;  // X's shape
    int64_t axis = 0, block = 1, blocks = 1;
    int64_t padded() const { return blocks * block; }
  };
  absl::StatusOr<BlockView> Blocks(const std::string& x,
                                   int64_t axis, int64_t block) {
    QAT_ASSIGN_OR_RETURN(const ValueShape xs, KnownShape(x, "X"));
    for (int64_t d : xs.dims) {
      if (d < 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "block-wise FakeQuant needs X '", x, "' of a static shape"));
      }
    }
    QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> ps,
                         BlockedParamShape(xs.dims, axis, block));
    BlockView v;
    v.dims = xs.dims;
    v.axis = axis;
    v.block = block;
    v.blocks = ps[axis];
    return v;
  }

  // A blocked parameter [.., blocks, ..] repeated to X's shape [.., n, ..]:
  // Unsqueeze after the axis, Tile by the block size, Reshape, and Slice
  // off the last block's padding.
  std::string RepeatBlocks(const std::string& p, const BlockView& v, const std::string& hint) {
    const int64_t a = v.axis;
    std::string t = Op("Unsqueeze", {p, g_.ConstantInt64s({a + 1}, "decompose_axes")},
                       hint + "_unsqueezed");
    std::vector<int64_t> repeats(v.dims.size() + 1, 1);
    repeats[a + 1] = v.block;
    t = Op("Tile", {t, g_.ConstantInt64s(repeats, "decompose_repeats")}, hint + "_tiled");
    std::vector<int64_t> flat = v.dims;
    flat[a] = v.padded();
    t = Op("Reshape", {t, g_.ConstantInt64s(flat, "decompose_shape")}, hint + "_flat");
    if (v.padded() == v.dims[a]) return t;
    return Op("Slice",
              {t, g_.ConstantInt64s({0}, "decompose_starts"),
               g_.ConstantInt64s({v.dims[a]}, "decompose_ends"),
               g_.ConstantInt64s({a}, "decompose_axes")},
              hint);
  }

  // Sums of X-shaped terms over each block: Pad the axis to whole blocks
  // (with zeros, which add nothing), Reshape to [.., blocks, block, ..] and
  // ReduceSum the block axis.
  std::string SumBlocks(const std::string& terms, const BlockView& v, const std::string& hint) {
    const int64_t a = v.axis;
    const int64_t rank = static_cast<int64_t>(v.dims.size());
    std::string t = terms;
    if (v.padded() != v.dims[a]) {
      std::vector<int64_t> pads(2 * rank, 0);
      pads[rank + a] = v.padded() - v.dims[a];
      t = Op("Pad", {t, g_.ConstantInt64s(pads, "decompose_pads")}, hint + "_padded");
    }
    std::vector<int64_t> split(v.dims.begin(), v.dims.end());
    split[a] = v.blocks;
    split.insert(split.begin() + a + 1, v.block);
    t = Op("Reshape", {t, g_.ConstantInt64s(split, "decompose_shape")}, hint + "_blocks");
    return g_.ReduceSum(t, {a + 1}, false, hint);
  }

  absl::StatusOr<int64_t> ChannelAxis(const onnx::NodeProto& node, const std::string& x) {
    QAT_ASSIGN_OR_RETURN(const ValueShape xs, KnownShape(x, "X"));
    const int64_t axis = GetAttrInt(node, "axis", 0);
    const int64_t a = axis < 0 ? axis + xs.rank() : axis;
    if (a < 0 || a >= xs.rank()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "axis ", axis, " is out of range for X '", x, "' of rank ", xs.rank()));
    }
    return a;
  }

  // u = X / s, r = round(u), v = r + z: QuantizeLinear before its clamp.
  struct Quantized {
    std::string u, r, v;
  };
  Quantized Quantize(const std::string& x, const Grid& grid, const std::string& hint) {
    Quantized q;
    q.u = Op("Div", {x, grid.scale}, hint + "_scaled");
    q.r = Op("Round", {q.u}, hint + "_rounded");
    q.v = Op("Add", {q.r, grid.zero_point}, hint + "_level");
    return q;
  }

  // qmin <= v <= qmax; false for NaN.
  std::string Inside(const Quantized& q, const Grid& grid, const std::string& hint,
                     const std::string& out = "") {
    const std::string ge = Op("GreaterOrEqual", {q.v, grid.qmin}, hint + "_not_below");
    const std::string le = Op("LessOrEqual", {q.v, grid.qmax}, hint + "_not_above");
    return Op("And", {ge, le}, hint + "_inside", out);
  }

  // A stem for the names of a node's new values.
  static std::string Hint(const onnx::NodeProto& node) {
    if (!node.name().empty()) return node.name();
    for (const auto& o : node.output()) {
      if (!o.empty()) return o;
    }
    return node.op_type();
  }

  absl::Status FakeQuant(const onnx::NodeProto& node, bool per_channel) {
    const std::string x = node.input_size() > 0 ? node.input(0) : "";
    QAT_ASSIGN_OR_RETURN(const Grid grid, MakeGrid(node, x, per_channel));
    const std::string hint = Hint(node);
    const Quantized q = Quantize(x, grid, hint);
    if (const std::string y = OutputOf(node, 0); !y.empty()) {
      const std::string c = Op("Clip", {q.v, grid.qmin, grid.qmax}, hint + "_clamped");
      const std::string d = Op("Sub", {c, grid.zero_point}, hint + "_centered");
      Op("Mul", {d, grid.scale}, hint, y);
    }
    if (const std::string mask = OutputOf(node, 1); !mask.empty()) {
      Inside(q, grid, hint, mask);
    }
    return absl::OkStatus();
  }

  absl::Status FakeQuantGrad(const onnx::NodeProto& node) {
    if (node.input_size() < 2 || node.output_size() < 1) {
      return absl::InvalidArgumentError("needs dY and gradient_mask");
    }
    Op("Where", {node.input(1), node.input(0), Float(0.0f)}, Hint(node), node.output(0));
    return absl::OkStatus();
  }

  absl::Status LsqGrad(const onnx::NodeProto& node) {
    if (node.input_size() < 4) {
      return absl::InvalidArgumentError("needs X, dY, scale and zero_point");
    }
    const std::string x = node.input(0), dy = node.input(1);
    // The grid reads inputs 1 and 2 as scale and zero point.
    onnx::NodeProto params = node;
    params.clear_input();
    for (int i : {0, 2, 3}) params.add_input(node.input(i));
    const int64_t block = GetAttrInt(node, "block_size", 0);
    QAT_ASSIGN_OR_RETURN(const ValueShape ss, KnownShape(node.input(2), "scale"));
    int64_t count = 1;
    for (int64_t d : ss.dims) count = d < 0 ? -1 : count * d;
    if ((block == 0 && ss.rank() > 1) || count < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "scale '", node.input(2), "' must be a scalar or 1-D with a known size"));
    }
    const bool per_channel = block != 0 || count != 1;
    QAT_ASSIGN_OR_RETURN(const Grid grid, MakeGrid(params, x, per_channel));
    std::vector<int64_t> reduce_axes;  // empty: every axis (per tensor)
    std::optional<BlockView> blocks;   // per block: sums over each block
    if (per_channel) {
      QAT_ASSIGN_OR_RETURN(const int64_t axis, ChannelAxis(node, x));
      QAT_ASSIGN_OR_RETURN(const ValueShape xs, KnownShape(x, "X"));
      if (block != 0) {
        QAT_ASSIGN_OR_RETURN(blocks, Blocks(x, axis, block));
      }
      for (int64_t d = 0; d < xs.rank(); ++d) {
        if (d != axis) reduce_axes.push_back(d);
      }
    }
    const auto reduce = [&](const std::string& terms, const std::string& h) {
      if (blocks.has_value()) return SumBlocks(terms, *blocks, h);
      return g_.ReduceSum(terms, reduce_axes, false, h);
    };
    const std::string hint = Hint(node);
    const Quantized q = Quantize(x, grid, hint);
    if (const std::string dx = OutputOf(node, 0); !dx.empty()) {
      const std::string inside = Inside(q, grid, hint);
      Op("Where", {inside, dy, Float(0.0f)}, hint + "_dx", dx);
    }
    const std::string ds = OutputOf(node, 1), dz = OutputOf(node, 2);
    if (ds.empty() && dz.empty()) return absl::OkStatus();

    // Sums in double (or float), then back to float under the output's name.
    const bool wide = config_.lsq_sums_in_double;
    const auto widen = [&](const std::string& v, const std::string& h) {
      return wide ? Op("Cast", {v}, h, "", {AttrInt("to", onnx::TensorProto::DOUBLE)}) : v;
    };
    const auto finish = [&](const std::string& op, std::vector<std::string> in,
                            const std::string& out, const std::string& h) {
      if (!wide) return Op(op, std::move(in), h, out);
      return Op("Cast", {Op(op, std::move(in), h + "_wide")}, h, out,
                {AttrInt("to", onnx::TensorProto::FLOAT)});
    };
    // g shaped like a per-tensor scale stored as [1], so the result is too.
    const bool one_d = !per_channel && ss.rank() == 1;
    const std::string g =
        Constant(static_cast<double>(GetAttrFloat(node, "grad_scale", 1.0f)), wide, one_d);
    const std::string below = Op("Less", {q.v, grid.qmin}, hint + "_below");
    const std::string above = Op("Greater", {q.v, grid.qmax}, hint + "_above");
    const std::string wide_dy = widen(dy, hint + "_dy_wide");
    if (!ds.empty()) {
      // d y / d s: r - u inside, qmin - z below, qmax - z above.
      const std::string low = Op("Sub", {grid.qmin, grid.zero_point}, hint + "_low_step");
      const std::string high = Op("Sub", {grid.qmax, grid.zero_point}, hint + "_high_step");
      const std::string frac = Op("Sub", {q.r, q.u}, hint + "_rounding");
      const std::string local =
          Op("Where", {below, low, Op("Where", {above, high, frac}, hint + "_local_in")},
             hint + "_local");
      const std::string terms =
          Op("Mul", {wide_dy, widen(local, hint + "_local_wide")}, hint + "_scale_terms");
      const std::string sum = reduce(terms, hint + "_scale_sum");
      finish("Mul", {sum, g}, ds, hint + "_dscale");
    }
    if (!dz.empty()) {
      // d y / d z: -s outside, 0 inside; the reference sums dY outside and
      // multiplies by -s, then by g.  Two Wheres rather than Or(below,
      // above): NaN is neither, and libqat's executor has no Or.
      const std::string zero = Constant(0.0, wide, false);
      const std::string terms =
          Op("Where", {below, wide_dy, Op("Where", {above, wide_dy, zero}, hint + "_zp_above")},
             hint + "_zp_terms");
      const std::string sum = reduce(terms, hint + "_zp_sum");
      const std::string neg = Op("Neg", {widen(node.input(2), hint + "_scale_wide")},
                                 hint + "_neg_scale");
      finish("Mul", {Op("Mul", {sum, neg}, hint + "_zp_scaled"), g}, dz, hint + "_dzp");
    }
    return absl::OkStatus();
  }

  GraphEditor g_;
  DecomposeConfig config_;
  std::map<float, std::string> floats_;
  std::map<std::tuple<double, bool, bool>, std::string> constants_;
  std::map<int64_t, std::string> channel_shapes_;
};

// Condition 2: the imported default-domain opset, raised only from nothing.
absl::Status RequireOpset(onnx::ModelProto* model) {
  for (const auto& op : model->opset_import()) {
    if (!(op.domain().empty() || op.domain() == "ai.onnx")) continue;
    if (op.version() >= kMinimumOpset) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        "the standard-op form needs ONNX opset ", kMinimumOpset,
        " or newer, and the model imports opset ", op.version(),
        "; raising it would change the meaning of its other nodes, so convert the model "
        "to opset 13 first"));
  }
  auto* op = model->add_opset_import();
  op->set_domain("");
  op->set_version(kMinimumOpset);
  return absl::OkStatus();
}

// Condition 3: shapes for nodes whose X (or LSQ's scale) has none.
bool NeedsShapes(const onnx::ModelProto& model) {
  std::set<std::string> known;
  for (const auto* list : {&model.graph().input(), &model.graph().output(),
                           &model.graph().value_info()}) {
    for (const auto& v : *list) {
      if (v.type().tensor_type().has_shape()) known.insert(v.name());
    }
  }
  for (const auto& t : model.graph().initializer()) known.insert(t.name());
  for (const auto& n : model.graph().node()) {
    const CustomOp op = Classify(n);
    if (op == CustomOp::kNone || op == CustomOp::kFakeQuantGrad || n.input_size() == 0) {
      continue;
    }
    if (op != CustomOp::kFakeQuant && known.count(n.input(0)) == 0) return true;
    if (op == CustomOp::kLsqGrad && n.input_size() > 2 && known.count(n.input(2)) == 0) {
      return true;
    }
  }
  return false;
}

// Condition 6: imports of custom domains no node uses any more.
void DropUnusedImports(onnx::ModelProto* model) {
  std::set<std::string> used;
  for (const auto& n : model->graph().node()) used.insert(n.domain());
  auto* imports = model->mutable_opset_import();
  for (int i = imports->size() - 1; i >= 0; --i) {
    const std::string& d = imports->Get(i).domain();
    if ((d == kMicrosoftDomain || d == kLibqatDomain) && used.count(d) == 0) {
      imports->DeleteSubrange(i, 1);
    }
  }
}

}  // namespace

absl::StatusOr<bool> DecomposePass::RunImpl(onnx::ModelProto* model) {
  std::vector<int> custom;
  for (int i = 0; i < model->graph().node_size(); ++i) {
    if (Classify(model->graph().node(i)) != CustomOp::kNone) custom.push_back(i);
  }
  if (custom.empty()) return false;
  QAT_RETURN_IF_ERROR(RequireOpset(model));
  if (NeedsShapes(*model)) QAT_RETURN_IF_ERROR(graph::InferShapesLeniently(model));
  {
    Decomposer d(model, config_);
    const int original = model->graph().node_size();
    for (int i : custom) {
      // A copy: rewriting appends nodes, which may move the graph's storage.
      const onnx::NodeProto node = model->graph().node(i);
      QAT_RETURN_IF_ERROR(d.Rewrite(node, Classify(node)));
    }
    // Drop the rewritten nodes (the first `original` nodes hold them).
    auto* nodes = model->mutable_graph()->mutable_node();
    std::vector<bool> drop(original, false);
    for (int i : custom) drop[i] = true;
    int kept = 0;
    for (int i = 0; i < nodes->size(); ++i) {
      if (i < original && drop[i]) continue;
      if (kept != i) nodes->SwapElements(kept, i);
      ++kept;
    }
    nodes->DeleteSubrange(kept, nodes->size() - kept);
  }
  DropUnusedImports(model);
  QAT_RETURN_IF_ERROR(training::TopologicalSort(model->mutable_graph()));
  return true;
}

}  // namespace passes
}  // namespace qat
