#include "core/opset21_check.h"

#include <map>
#include <optional>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/int4_packing.h"
#include "core/onnx_tensor.h"
#include "core/op_schemas.h"
#include "onnx/defs/schema.h"
#include "qat/quant_params.h"
#include "qat/status_macros.h"

namespace qat {
namespace {

// Ops whose meaning changed between opsets 18 and 21 in a way libqat's
// executor does not follow, and the form it refuses.  Changes that only
// add types (Cast, Constant, Identity, Reshape, Shape, Size, Flatten,
// Squeeze, Unsqueeze, Transpose, If, Loop, Scan, ConstantOfShape, Equal,
// ReduceMax/ReduceMin's bool) or that the executor runs by opset
// (Reduce* axes as an input since 18, Pad's axes input, ScatterElements'
// max/min, Resize, which refuses its opset-18 attributes itself) are not
// listed; QuantizeLinear and DequantizeLinear are checked below.
struct Change {
  const char* op;
  int64_t since;
  const char* refused;
};
constexpr Change kChangedAfter17[] = {
    {"Split", 18, "a num_outputs other than its number of outputs"},
    {"AveragePool", 19, "dilations other than 1"},
    {"LpPool", 18, "ceil_mode 1"},
    {"Pad", 19, "mode 'wrap'"},
    {"GridSample", 20, "any use (its mode names changed at opset 20)"},
    {"DFT", 20, "any use (dft_length and axis became inputs at opset 20)"},
    {"GroupNormalization", 21, "any use (scale and bias became per channel at opset 21)"},
};

bool UsesChange(const onnx::NodeProto& n, const Change& c) {
  const std::string op = c.op;
  auto attr = [&](const char* name) -> const onnx::AttributeProto* {
    for (const auto& a : n.attribute()) {
      if (a.name() == name) return &a;
    }
    return nullptr;
  };
  if (op == "Split") {
    return attr("num_outputs") != nullptr && attr("num_outputs")->i() != n.output_size();
  }
  if (op == "AveragePool") {
    const auto* d = attr("dilations");
    if (d == nullptr) return false;
    for (int64_t v : d->ints()) {
      if (v != 1) return true;
    }
    return false;
  }
  if (op == "LpPool") return attr("ceil_mode") != nullptr && attr("ceil_mode")->i() != 0;
  if (op == "Pad") return attr("mode") != nullptr && attr("mode")->s() == "wrap";
  return true;
}

bool IsQdq(const onnx::NodeProto& n) {
  return (n.domain().empty() || n.domain() == "ai.onnx") &&
         (n.op_type() == "QuantizeLinear" || n.op_type() == "DequantizeLinear");
}

int64_t IntAttr(const onnx::NodeProto& n, const char* name, int64_t fallback) {
  for (const auto& a : n.attribute()) {
    if (a.name() == name) return a.i();
  }
  return fallback;
}

std::string Describe(const onnx::NodeProto& n) {
  return absl::StrCat("node '", n.name(), "' (", n.op_type(), ")");
}

// Rule 5 for one Q/DQ node with constant inputs where they are known.
// `dequantized`: the shapes of DequantizeLinear outputs whose x is an
// initializer (a block scale stored as uint8 codes behind its own DQ).
absl::Status CheckBlocks(const onnx::NodeProto& n,
                         const std::map<std::string, const onnx::TensorProto*>& inits,
                         const std::map<std::string, std::vector<int64_t>>& dequantized) {
  const int64_t block = IntAttr(n, "block_size", 0);
  if (block < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(n), " has block_size ", block, "; it must be >= 0"));
  }
  if (n.op_type() == "QuantizeLinear" && IntAttr(n, "output_dtype", 0) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        Describe(n), " sets output_dtype; libqat takes the output type from the zero point"));
  }
  auto find = [&](int i) -> const onnx::TensorProto* {
    if (i >= n.input_size() || n.input(i).empty()) return nullptr;
    auto it = inits.find(n.input(i));
    return it == inits.end() ? nullptr : it->second;
  };
  const onnx::TensorProto* x = find(0);
  const onnx::TensorProto* scale = find(1);
  const onnx::TensorProto* zp = find(2);
  if (n.op_type() == "DequantizeLinear" && x != nullptr && zp != nullptr &&
      x->data_type() != zp->data_type()) {
    return absl::InvalidArgumentError(absl::StrCat(
        Describe(n), ": x '", x->name(), "' and x_zero_point '", zp->name(),
        "' have different types (", x->data_type(), " and ", zp->data_type(), ")"));
  }
  if (block == 0) return absl::OkStatus();
  std::optional<std::vector<int64_t>> scale_dims;
  if (scale != nullptr) {
    scale_dims.emplace(scale->dims().begin(), scale->dims().end());
  } else if (n.input_size() > 1) {
    if (auto it = dequantized.find(n.input(1)); it != dequantized.end()) {
      scale_dims = it->second;
    }
  }
  if (!scale_dims.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        Describe(n), " is block-wise; libqat needs its scale to be an initializer or "
        "a DequantizeLinear of one"));
  }
  if (x == nullptr) return absl::OkStatus();  // shape known only at run time
  const std::vector<int64_t> xd(x->dims().begin(), x->dims().end());
  const int64_t axis = IntAttr(n, "axis", 1);
  absl::StatusOr<std::vector<int64_t>> want = BlockedParamShape(xd, axis, block);
  if (!want.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(Describe(n), ": ", want.status().message()));
  }
  std::vector<std::pair<std::string, std::vector<int64_t>>> params = {
      {n.input(1), *scale_dims}};
  if (zp != nullptr) params.push_back({zp->name(), {zp->dims().begin(), zp->dims().end()}});
  for (const auto& [name, got] : params) {
    if (got != *want) {
      return absl::InvalidArgumentError(absl::StrCat(
          Describe(n), ": block_size ", block, " along axis ", axis, " of '", x->name(),
          "' ", ShapeToString(xd), " needs '", name, "' of shape ",
          ShapeToString(*want), ", got ", ShapeToString(got),
          " (the block size does not fit the parameters)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckOpset21Model(const onnx::ModelProto& model, const std::string& source) {
  RegisterOpSchemas();
  auto fail = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("'", source, "' (opset 21): ", what));
  };
  // Rule 1.
  if (model.ir_version() > kInt4IrVersion) {
    return fail(absl::StrCat("ir_version ", model.ir_version(), " is newer than ",
                             kInt4IrVersion));
  }
  for (const auto& op : model.opset_import()) {
    if ((op.domain().empty() || op.domain() == "ai.onnx") && op.version() != kInt4Opset) {
      return fail(absl::StrCat("imports the default domain at ", op.version()));
    }
  }
  const onnx::GraphProto& g = model.graph();
  // Rule 3, and the initializers by name.
  std::set<std::string> known;
  std::map<std::string, const onnx::TensorProto*> inits;
  std::map<std::string, std::vector<int64_t>> dequantized;  // CheckBlocks
  for (const auto& t : g.initializer()) {
    if (!inits.emplace(t.name(), &t).second) {
      return fail(absl::StrCat("initializer '", t.name(), "' is defined twice"));
    }
    known.insert(t.name());
  }
  for (const auto& in : g.input()) known.insert(in.name());
  // Rule 4: where each 4-bit initializer is read.
  std::set<std::string> four_bit;
  for (const auto& t : g.initializer()) {
    if (!IsOnnx4BitType(t.data_type())) continue;
    four_bit.insert(t.name());
    QAT_RETURN_IF_ERROR(CheckTensorProto(t));
  }
  for (const auto& n : g.node()) {
    for (int i = 0; i < n.input_size(); ++i) {
      const std::string& in = n.input(i);
      if (in.empty()) continue;
      if (known.count(in) == 0) {
        return fail(absl::StrCat(Describe(n), " reads '", in,
                                 "', which no earlier node, input or initializer defines"));
      }
      if (four_bit.count(in) != 0 &&
          !(IsQdq(n) && n.op_type() == "DequantizeLinear" && (i == 0 || i == 2))) {
        return fail(absl::StrCat(Describe(n), " reads the 4-bit tensor '", in, "' as input ",
                                 i, "; only DequantizeLinear's x and x_zero_point may"));
      }
    }
    const bool standard = n.domain().empty() || n.domain() == "ai.onnx";
    if (standard) {
      // Rule 2.
      if (onnx::OpSchemaRegistry::Schema(n.op_type(), 17, "") == nullptr) {
        return fail(absl::StrCat(Describe(n), ": libqat does not know this op at opset 21"));
      }
      for (const Change& c : kChangedAfter17) {
        if (n.op_type() == c.op && UsesChange(n, c)) {
          return fail(absl::StrCat(Describe(n), " uses ", c.refused, ", which opset ", c.since,
                                   " introduced and libqat does not run"));
        }
      }
      if (IsQdq(n)) {
        absl::Status s = CheckBlocks(n, inits, dequantized);
        if (!s.ok()) return fail(std::string(s.message()));
        if (n.op_type() == "DequantizeLinear" && n.output_size() > 0) {
          if (auto it = inits.find(n.input(0)); it != inits.end()) {
            dequantized[n.output(0)] = {it->second->dims().begin(), it->second->dims().end()};
          }
        }
      }
    }
    for (const auto& o : n.output()) {
      if (o.empty()) continue;
      if (!known.insert(o).second) {
        return fail(absl::StrCat(Describe(n), " writes '", o, "', which is already defined"));
      }
    }
  }
  for (const auto& out : g.output()) {
    if (known.count(out.name()) == 0) {
      return fail(absl::StrCat("graph output '", out.name(), "' is never computed"));
    }
  }
  return absl::OkStatus();
}

}  // namespace qat
