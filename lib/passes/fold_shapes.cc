#include "passes/fold_shapes.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "core/onnx_tensor.h"
#include "graph/graph_editor.h"
#include "graph/graph_index.h"
#include "graph/rearrange.h"
#include "graph/shape_inference.h"
#include "passes/prune_unused_initializers.h"
#include "qat/status_macros.h"
#include "qat/tensor.h"

namespace qat {
namespace passes {
namespace {

// A tracked shape vector: its elements, and which are static (a constant's
// -1 is a value, a symbolic dim is not); scalar when it is a 0-D value
// (Gather with a scalar index).
struct Dims {
  std::vector<int64_t> values;
  std::vector<bool> known;
  bool scalar = false;
  bool all_static() const {
    return std::all_of(known.begin(), known.end(), [](bool k) { return k; });
  }
  void Append(const Dims& d, size_t i) {
    values.push_back(d.values[i]);
    known.push_back(d.known[i]);
  }
};

class Folder {
 public:
  explicit Folder(onnx::ModelProto* model) : g_(model) {}

  absl::StatusOr<bool> Run() {
    onnx::GraphProto& graph = g_.graph();
    const graph::GraphIndex index(graph);
    // Nodes stay in place while tracking (constants are looked up in them);
    // the folded ones are dropped at the end.
    std::vector<bool> folded(static_cast<size_t>(graph.node_size()), false);
    for (int k = 0; k < graph.node_size(); ++k) {
      const onnx::NodeProto& node = graph.node(k);
      const bool standard = node.domain().empty() || node.domain() == "ai.onnx";
      if (!standard || node.output_size() != 1) continue;
      std::optional<Dims> d = Track(node);
      if (!d.has_value() && DeclareReshaped(node)) shaped_ = true;
      if (!d.has_value()) {
        std::optional<onnx::TensorProto> filled;
        if (!index.IsGraphOutput(node.output(0))) filled = FillConstant(node);
        if (filled.has_value()) {
          *graph.add_initializer() = std::move(*filled);
          folded[k] = true;
        }
        continue;
      }
      tracked_[node.output(0)] = *d;
      if (!d->all_static() || index.IsGraphOutput(node.output(0))) continue;
      onnx::TensorProto t;
      t.set_name(node.output(0));
      t.set_data_type(onnx::TensorProto::INT64);
      if (!d->scalar) t.add_dims(static_cast<int64_t>(d->values.size()));
      for (int64_t v : d->values) t.add_int64_data(v);
      *graph.add_initializer() = std::move(t);
      folded[k] = true;
    }
    if (std::find(folded.begin(), folded.end(), true) == folded.end()) return shaped_;
    std::vector<int> kept;
    for (int k = 0; k < graph.node_size(); ++k) {
      if (!folded[k]) kept.push_back(k);
    }
    graph::Rearrange(graph.mutable_node(), kept);
    PruneUnusedInitializers(&graph);
    return true;
  }

 private:
  // ConstantOfShape of a static shape (as PyTorch writes for expand(n, -1,
  // -1): ConstantOfShape(Shape(shape vector))) as an initializer, up to
  // kMaxFilled elements.
  std::optional<onnx::TensorProto> FillConstant(const onnx::NodeProto& node) const {
    static constexpr int64_t kMaxFilled = 4096;
    if (node.op_type() != "ConstantOfShape" || node.input_size() != 1) return std::nullopt;
    std::optional<Dims> shape = Get(node.input(0));
    if (!shape || shape->scalar || !shape->all_static()) return std::nullopt;
    int64_t count = 1;
    for (int64_t d : shape->values) {
      if (d < 0 || d > kMaxFilled || (count *= d) > kMaxFilled) return std::nullopt;
    }
    onnx::TensorProto value = training::MakeFloatTensor("", {1}, {0.0f});
    for (const auto& a : node.attribute()) {
      if (a.name() == "value" && a.type() == onnx::AttributeProto::TENSOR) value = a.t();
    }
    absl::StatusOr<Tensor> one = TensorFromProto(value);
    if (!one.ok() || one->num_elements() != 1) return std::nullopt;
    Tensor filled(one->dtype(), shape->values);
    const size_t elem = DataTypeSize(one->dtype());
    char* dst = static_cast<char*>(filled.raw_data());
    for (int64_t i = 0; i < count; ++i) {
      std::memcpy(dst + i * elem, one->raw_data(), elem);
    }
    return TensorToProto(filled, node.output(0));
  }

  // A tracked vector, or an int64 constant read as one.
  std::optional<Dims> Get(const std::string& name) const {
    if (auto it = tracked_.find(name); it != tracked_.end()) return it->second;
    const onnx::TensorProto* proto = name.empty() ? nullptr : g_.FindConstant(name);
    std::optional<std::vector<int64_t>> c = g_.ConstantInts(name);
    if (!c.has_value()) return std::nullopt;
    return Dims{*c, std::vector<bool>(c->size(), true), proto->dims_size() == 0};
  }

  std::optional<Dims> Track(const onnx::NodeProto& node) const {
    const std::string& op = node.op_type();
    if (op == "Shape") {
      std::optional<training::ValueShape> s = g_.ShapeOf(node.input(0));
      if (!s.has_value() || !s->rank_known) return std::nullopt;
      const int64_t rank = s->rank();
      auto clamp = [rank](int64_t v) {
        if (v < 0) v += rank;
        return std::clamp<int64_t>(v, 0, rank);
      };
      int64_t start = 0, end = rank;
      if (g_.opset() >= 15) {
        start = clamp(training::GetAttrInt(node, "start", 0));
        end = clamp(training::GetAttrInt(node, "end", rank));
      }
      Dims d;
      for (int64_t a = start; a < end; ++a) {
        d.values.push_back(s->dims[a]);
        d.known.push_back(s->dims[a] >= 0);
      }
      return d;
    }
    if (op == "Gather" && node.input_size() == 2) {
      if (training::GetAttrInt(node, "axis", 0) != 0) return std::nullopt;
      std::optional<Dims> v = Tracked(node.input(0));
      const onnx::TensorProto* ip = g_.FindConstant(node.input(1));
      std::optional<std::vector<int64_t>> idx = g_.ConstantInts(node.input(1));
      if (!v || v->scalar || !idx || ip == nullptr || ip->dims_size() > 1) return std::nullopt;
      const int64_t n = static_cast<int64_t>(v->values.size());
      Dims d;
      d.scalar = ip->dims_size() == 0;
      for (int64_t i : *idx) {
        if (i < 0) i += n;
        if (i < 0 || i >= n) return std::nullopt;
        d.Append(*v, static_cast<size_t>(i));
      }
      return d;
    }
    if (op == "Slice" && node.input_size() >= 3 && g_.opset() >= 10) {
      std::optional<Dims> v = Tracked(node.input(0));
      std::optional<std::vector<int64_t>> starts = g_.ConstantInts(node.input(1));
      std::optional<std::vector<int64_t>> ends = g_.ConstantInts(node.input(2));
      if (!v || v->scalar || !starts || !ends || starts->size() != 1 || ends->size() != 1) {
        return std::nullopt;
      }
      if (node.input_size() > 3 && !node.input(3).empty()) {
        std::optional<std::vector<int64_t>> axes = g_.ConstantInts(node.input(3));
        if (!axes || axes->size() != 1 || ((*axes)[0] != 0 && (*axes)[0] != -1)) return std::nullopt;
      }
      int64_t step = 1;
      if (node.input_size() > 4 && !node.input(4).empty()) {
        std::optional<std::vector<int64_t>> steps = g_.ConstantInts(node.input(4));
        if (!steps || steps->size() != 1 || (*steps)[0] == 0) return std::nullopt;
        step = (*steps)[0];
      }
      Dims out;
      for (int64_t p : training::SlicePositions(static_cast<int64_t>(v->values.size()),
                                                (*starts)[0], (*ends)[0], step)) {
        out.Append(*v, static_cast<size_t>(p));
      }
      return out;
    }
    if (op == "Unsqueeze") {
      std::optional<Dims> v = Tracked(node.input(0));
      std::vector<int64_t> axes = training::GetAttrInts(node, "axes");
      if (node.input_size() > 1) axes = g_.ConstantInts(node.input(1)).value_or(std::vector<int64_t>{});
      if (!v || !v->scalar || axes != std::vector<int64_t>{0}) return std::nullopt;
      v->scalar = false;
      return v;
    }
    if (op == "Concat" && training::GetAttrInt(node, "axis", 0) == 0) {
      Dims out;
      bool any_tracked = false;
      for (const auto& i : node.input()) {
        std::optional<Dims> v = Get(i);
        if (!v || v->scalar) return std::nullopt;
        any_tracked |= tracked_.count(i) != 0;
        for (size_t k = 0; k < v->values.size(); ++k) out.Append(*v, k);
      }
      if (!any_tracked) return std::nullopt;  // constants only: not a shape computation
      return out;
    }
    if ((op == "Add" || op == "Sub" || op == "Mul" || op == "Div") && node.input_size() == 2) {
      return Arithmetic(op, node.input(0), node.input(1));
    }
    return std::nullopt;
  }

  // Add, Sub, Mul or Div of a tracked vector and another or an int64
  // constant (PyTorch's attention slices its packed projection at
  // Shape(x)[-1] / 3 * k), element by element, one side of length 1
  // broadcast.  An element is static when both are and the result is
  // exact: no overflow, and Div only of non-negative values by positive
  // ones, where truncation and flooring agree.
  std::optional<Dims> Arithmetic(const std::string& op, const std::string& a_name,
                                 const std::string& b_name) const {
    std::optional<Dims> a = Get(a_name), b = Get(b_name);
    if (!a || !b || (tracked_.count(a_name) == 0 && tracked_.count(b_name) == 0)) {
      return std::nullopt;
    }
    const size_t na = a->values.size(), nb = b->values.size();
    if (na != nb && na != 1 && nb != 1) return std::nullopt;
    Dims out;
    out.scalar = a->scalar && b->scalar;
    for (size_t i = 0, n = std::max(na, nb); i < n; ++i) {
      const size_t ia = na == 1 ? 0 : i, ib = nb == 1 ? 0 : i;
      const int64_t x = a->values[ia], y = b->values[ib];
      int64_t v = 0;
      bool exact = false;
      if (op == "Add") {
        exact = !__builtin_add_overflow(x, y, &v);
      } else if (op == "Sub") {
        exact = !__builtin_sub_overflow(x, y, &v);
      } else if (op == "Mul") {
        exact = !__builtin_mul_overflow(x, y, &v);
      } else if (x >= 0 && y > 0) {
        v = x / y;
        exact = true;
      }
      out.values.push_back(exact ? v : -1);
      out.known.push_back(exact && a->known[ia] && b->known[ib]);
    }
    return out;
  }

  // A Reshape whose output shape inference left unknown, to a shape vector
  // this pass tracks (PyTorch's attention reshapes to [T, N * heads, d]
  // from Shape(x)): declares the output's rank and every dimension the
  // vector fixes, so that inference goes on from there.  A 0 copies the
  // input's dimension (without allowzero), a -1 is what the others leave
  // when everything else is static.  False when nothing was declared.
  bool DeclareReshaped(const onnx::NodeProto& node) {
    if (node.op_type() != "Reshape" || node.input_size() != 2) return false;
    const std::string& out = node.output(0);
    std::optional<training::ValueShape> known_out = g_.ShapeOf(out);
    if (known_out.has_value() && known_out->rank_known) return false;
    std::optional<training::ValueShape> in = g_.ShapeOf(node.input(0));
    std::optional<Dims> target = Get(node.input(1));
    if (!in || in->elem_type == 0 || !target || target->scalar) return false;
    const bool allow_zero = g_.opset() >= 14 && training::GetAttrInt(node, "allowzero", 0) != 0;
    training::ValueShape shape;
    shape.elem_type = in->elem_type;
    shape.rank_known = true;
    int64_t inferred = -1, others = 1;  // the -1's position; the product of the rest
    bool others_static = true;
    for (size_t i = 0; i < target->values.size(); ++i) {
      int64_t dim = -1;
      const int64_t v = target->values[i];
      if (!target->known[i]) {
        dim = -1;
      } else if (v == 0 && !allow_zero) {
        dim = in->rank_known && static_cast<int64_t>(i) < in->rank() ? in->dims[i] : -1;
      } else if (v == -1 && inferred < 0) {
        inferred = static_cast<int64_t>(i);
      } else if (v < 0) {
        return false;  // not a valid target: the executor will say so
      } else {
        dim = v;
      }
      if (static_cast<int64_t>(i) != inferred) {
        others_static = others_static && dim >= 0 && !__builtin_mul_overflow(others, dim, &others);
      }
      shape.dims.push_back(dim);
    }
    if (inferred >= 0 && others_static && others > 0 && in->fully_known()) {
      int64_t total = 1;
      for (int64_t d : in->dims) {
        if (__builtin_mul_overflow(total, d, &total)) return false;
      }
      if (total % others == 0) shape.dims[inferred] = total / others;
    }
    g_.DeclareValueShape(out, shape);
    return true;
  }

  // A vector this pass tracks (from a Shape), not any constant.
  std::optional<Dims> Tracked(const std::string& name) const {
    if (auto it = tracked_.find(name); it != tracked_.end()) return it->second;
    return std::nullopt;
  }

  training::GraphEditor g_;
  absl::flat_hash_map<std::string, Dims> tracked_;
  bool shaped_ = false;  // a Reshape's output shape was declared
};

}  // namespace

absl::StatusOr<bool> FoldShapesPass::RunImpl(onnx::ModelProto* model) {
  // A fold or a declared Reshape can make later shapes known (the next
  // attention layer's), and with them the next fold: fold and infer again
  // until nothing changes.  Each round folds a node or declares a shape,
  // so the rounds are bounded.  Inference that fails only ends the
  // folding: what is folded stays correct.
  bool changed = false;
  for (int round = 0, rounds = model->graph().node_size(); round <= rounds; ++round) {
    QAT_ASSIGN_OR_RETURN(const bool progress, Folder(model).Run());
    if (!progress) break;
    changed = true;
    if (!graph::InferShapesLeniently(model).ok()) break;
  }
  return changed;
}

}  // namespace passes
}  // namespace qat
