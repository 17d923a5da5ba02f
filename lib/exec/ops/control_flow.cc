// Control flow: If, Loop, Scan.  Each runs subgraphs compiled once by its
// factory (NodeView::CompileSubgraph), reading outer-scope values through
// the node's implicit inputs (exec/kernel.h).  Loop-carried values pass from
// one iteration to the next without copies (two output vectors, used in
// turn); only Scan's input slices and the per-iteration scan outputs are
// copied, since a Tensor cannot view a strided part of another.
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "core/checked_size.h"
#include "exec/ops/op_util.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

absl::Status InSubgraph(const char* which, const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat("in its ", which, ": ", status.message()));
}

// Copies x[..., index, ...] (index along `axis`) into *out, whose shape is
// x's without that axis.
void SliceAlong(const Tensor& x, int64_t axis, int64_t index, Tensor* out) {
  std::vector<int64_t> shape = x.shape();
  const int64_t n = shape[axis];
  const int64_t outer = Product(shape, 0, axis);
  const size_t inner =
      static_cast<size_t>(Product(shape, axis + 1, shape.size())) * DataTypeSize(x.dtype());
  shape.erase(shape.begin() + axis);
  out->Resize(x.dtype(), shape);
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(out->raw_data());
  for (int64_t o = 0; o < outer; ++o) {
    std::memcpy(dst + o * inner, src + (o * n + index) * inner, inner);
  }
}

// Stacks items (all of one dtype and shape) along a new axis `axis` of the
// result; with `reverse`, item t goes to position size-1-t.
absl::Status StackAlong(const std::vector<Tensor>& items, int64_t axis, bool reverse,
                        Tensor* out) {
  const Tensor& first = items.front();
  for (const Tensor& t : items) {
    if (t.dtype() != first.dtype() || t.shape() != first.shape()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a scan output changes from ", DataTypeName(first.dtype()), " ",
          ShapeToString(first.shape()), " to ", DataTypeName(t.dtype()), " ",
          ShapeToString(t.shape()), " between iterations"));
    }
  }
  std::vector<int64_t> shape = first.shape();
  QAT_ASSIGN_OR_RETURN(axis, NormalizeAxis(axis, static_cast<int64_t>(shape.size()) + 1));
  const int64_t n = static_cast<int64_t>(items.size());
  shape.insert(shape.begin() + axis, n);
  out->Resize(first.dtype(), shape);
  const int64_t outer = Product(shape, 0, axis);
  const size_t inner =
      static_cast<size_t>(Product(shape, axis + 1, shape.size())) * DataTypeSize(first.dtype());
  char* dst = static_cast<char*>(out->raw_data());
  for (int64_t t = 0; t < n; ++t) {
    const char* src = static_cast<const char*>(items[t].raw_data());
    const int64_t pos = reverse ? n - 1 - t : t;
    for (int64_t o = 0; o < outer; ++o) {
      std::memcpy(dst + (o * n + pos) * inner, src + o * inner, inner);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> ReadCondition(const Tensor& t, const char* what) {
  if (t.dtype() != DataType::kBool || t.num_elements() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " must be one bool, got ", DataTypeName(t.dtype()), " ",
        ShapeToString(t.shape())));
  }
  return t.data<bool>()[0];
}

absl::Span<const Tensor* const> Outer(const KernelContext& ctx, int num_inputs) {
  return absl::Span<const Tensor* const>(ctx.inputs).subspan(num_inputs);
}

}  // namespace

absl::StatusOr<Kernel> MakeIf(const NodeView& node) {
  QAT_ASSIGN_OR_RETURN(std::shared_ptr<Subgraph> then_branch,
                       node.CompileSubgraph("then_branch"));
  QAT_ASSIGN_OR_RETURN(std::shared_ptr<Subgraph> else_branch,
                       node.CompileSubgraph("else_branch"));
  if (then_branch->num_inputs() != 0 || else_branch->num_inputs() != 0) {
    return absl::InvalidArgumentError("If's branches must take no inputs");
  }
  if (then_branch->num_outputs() != node.num_outputs() ||
      else_branch->num_outputs() != node.num_outputs()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "If has ", node.num_outputs(), " outputs, but its branches have ",
        then_branch->num_outputs(), " and ", else_branch->num_outputs()));
  }
  const int num_inputs = node.num_inputs();
  auto results = std::make_shared<std::vector<Tensor>>();
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    QAT_ASSIGN_OR_RETURN(const bool cond, ReadCondition(ctx.input(0), "If's condition"));
    Subgraph& branch = cond ? *then_branch : *else_branch;
    QAT_RETURN_IF_ERROR(InSubgraph(cond ? "then_branch" : "else_branch",
                                   branch.Run({}, Outer(ctx, num_inputs), ctx.pool,
                                              ctx.seed, results.get())));
    for (size_t i = 0; i < results->size(); ++i) std::swap(ctx.output(i), (*results)[i]);
    return absl::OkStatus();
  });
}

// Loop: the body takes (iteration, condition, carried...) and returns
// (condition, carried..., scan outputs...).  It runs while the iteration is
// below the trip count M (when given) and the condition holds (when given;
// after the first iteration, the condition is the body's).
absl::StatusOr<Kernel> MakeLoop(const NodeView& node) {
  QAT_ASSIGN_OR_RETURN(std::shared_ptr<Subgraph> body, node.CompileSubgraph("body"));
  const int num_inputs = node.num_inputs();
  const int num_carried = num_inputs - 2;
  if (num_carried < 0 || body->num_inputs() != num_carried + 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Loop has ", num_inputs, " inputs (M, cond and the carried values), so its "
        "body must have ", num_carried + 2, " inputs, not ", body->num_inputs()));
  }
  const int num_scan = body->num_outputs() - 1 - num_carried;
  if (num_scan < 0 || node.num_outputs() > num_carried + num_scan) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Loop's body has ", body->num_outputs(), " outputs for ", num_carried,
        " carried values; the node has ", node.num_outputs(), " outputs"));
  }
  struct State {
    std::vector<Tensor> results[2];  // iteration k writes results[k % 2]
    std::vector<std::vector<Tensor>> scans;
    Tensor iteration, condition;
  };
  auto state = std::make_shared<State>();
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    State& st = *state;
    int64_t trip_count = -1;
    if (ctx.has_input(0)) {
      QAT_ASSIGN_OR_RETURN(std::vector<int64_t> m, ReadIndices(ctx.input(0), "Loop's M"));
      if (m.size() != 1) return absl::InvalidArgumentError("Loop's M must be one integer");
      trip_count = m[0];
    }
    bool cond = true;
    if (ctx.has_input(1)) {
      QAT_ASSIGN_OR_RETURN(cond, ReadCondition(ctx.input(1), "Loop's cond"));
    }
    std::vector<const Tensor*> args(num_carried + 2);
    for (int c = 0; c < num_carried; ++c) {
      QAT_RETURN_IF_ERROR(RequireInput(ctx, 2 + c));
      args[2 + c] = ctx.inputs[2 + c];
    }
    st.scans.assign(num_scan, {});
    st.iteration.Resize(DataType::kInt64, {});
    st.condition.Resize(DataType::kBool, {});
    args[0] = &st.iteration;
    args[1] = &st.condition;
    int64_t k = 0;
    for (; (trip_count < 0 || k < trip_count) && cond; ++k) {
      st.iteration.data<int64_t>()[0] = k;
      st.condition.data<bool>()[0] = cond;
      std::vector<Tensor>& out = st.results[k % 2];
      QAT_RETURN_IF_ERROR(InSubgraph("body", body->Run(args, Outer(ctx, num_inputs), ctx.pool,
                                                       SplitMix64(ctx.seed + k), &out)));
      QAT_ASSIGN_OR_RETURN(cond, ReadCondition(out[0], "the body's condition output"));
      for (int c = 0; c < num_carried; ++c) args[2 + c] = &out[1 + c];
      for (int s = 0; s < num_scan; ++s) st.scans[s].push_back(std::move(out[1 + num_carried + s]));
    }
    for (int c = 0; c < num_carried; ++c) {
      if (k == 0) {
        ctx.output(c) = *args[2 + c];
      } else {
        std::swap(ctx.output(c), st.results[(k - 1) % 2][1 + c]);
      }
    }
    for (int s = 0; s < num_scan; ++s) {
      Tensor& out = ctx.output(num_carried + s);
      if (st.scans[s].empty()) {
        out.Resize(DataType::kFloat32, {0});  // no iteration: nothing says more
      } else {
        QAT_RETURN_IF_ERROR(StackAlong(st.scans[s], 0, false, &out));
      }
    }
    return absl::OkStatus();
  });
}

// Scan (opset 9 and later): the body takes (states..., one slice of each
// scan input) and returns (states..., one slice of each scan output).
absl::StatusOr<Kernel> MakeScan(const NodeView& node) {
  if (node.opset() < 9) {
    return absl::UnimplementedError("Scan before opset 9 (with a batch axis) is not supported");
  }
  QAT_ASSIGN_OR_RETURN(std::shared_ptr<Subgraph> body, node.CompileSubgraph("body"));
  const int num_inputs = node.num_inputs();
  const int64_t num_scan_inputs = node.GetInt("num_scan_inputs", -1);
  if (num_scan_inputs < 1 || num_scan_inputs > num_inputs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_scan_inputs is ", num_scan_inputs, "; it must lie in [1, ", num_inputs, "]"));
  }
  const int num_states = num_inputs - static_cast<int>(num_scan_inputs);
  const int num_scan_outputs = body->num_outputs() - num_states;
  if (body->num_inputs() != num_inputs || num_scan_outputs < 0 ||
      node.num_outputs() > body->num_outputs()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Scan's body has ", body->num_inputs(), " inputs and ", body->num_outputs(),
        " outputs for ", num_inputs, " node inputs of which ", num_scan_inputs, " are scanned"));
  }
  auto list = [&](const char* name, int64_t count) -> absl::StatusOr<std::vector<int64_t>> {
    std::vector<int64_t> v = node.GetInts(name);
    if (v.empty()) v.assign(count, 0);
    if (static_cast<int64_t>(v.size()) != count) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " has ", v.size(), " values; it must have ", count));
    }
    return v;
  };
  QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> in_axes,
                       list("scan_input_axes", num_scan_inputs));
  QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> in_dirs,
                       list("scan_input_directions", num_scan_inputs));
  QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> out_axes,
                       list("scan_output_axes", num_scan_outputs));
  QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> out_dirs,
                       list("scan_output_directions", num_scan_outputs));
  struct State {
    std::vector<Tensor> results[2];
    std::vector<Tensor> slices;
    std::vector<std::vector<Tensor>> scans;
  };
  auto state = std::make_shared<State>();
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    State& st = *state;
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, num_inputs));
    std::vector<int64_t> axes(num_scan_inputs);
    int64_t length = -1;
    for (int i = 0; i < num_scan_inputs; ++i) {
      const Tensor& x = ctx.input(num_states + i);
      QAT_ASSIGN_OR_RETURN(axes[i], NormalizeAxis(in_axes[i], x.rank()));
      const int64_t n = x.shape()[axes[i]];
      if (length >= 0 && n != length) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the scan inputs have different lengths: ", length, " and ", n));
      }
      length = n;
    }
    std::vector<const Tensor*> args(num_inputs);
    for (int s = 0; s < num_states; ++s) args[s] = ctx.inputs[s];
    st.slices.resize(num_scan_inputs);
    for (int i = 0; i < num_scan_inputs; ++i) args[num_states + i] = &st.slices[i];
    st.scans.assign(num_scan_outputs, {});
    for (int64_t t = 0; t < length; ++t) {
      for (int i = 0; i < num_scan_inputs; ++i) {
        SliceAlong(ctx.input(num_states + i), axes[i], in_dirs[i] != 0 ? length - 1 - t : t,
                   &st.slices[i]);
      }
      std::vector<Tensor>& out = st.results[t % 2];
      QAT_RETURN_IF_ERROR(InSubgraph("body", body->Run(args, Outer(ctx, num_inputs), ctx.pool,
                                                       SplitMix64(ctx.seed + t), &out)));
      for (int s = 0; s < num_states; ++s) args[s] = &out[s];
      for (int j = 0; j < num_scan_outputs; ++j) st.scans[j].push_back(std::move(out[num_states + j]));
    }
    for (int s = 0; s < num_states; ++s) {
      if (length == 0) {
        ctx.output(s) = *args[s];
      } else {
        std::swap(ctx.output(s), st.results[(length - 1) % 2][s]);
      }
    }
    for (int j = 0; j < num_scan_outputs; ++j) {
      Tensor& out = ctx.output(num_states + j);
      if (st.scans[j].empty()) {
        out.Resize(DataType::kFloat32, {0});
      } else {
        QAT_RETURN_IF_ERROR(StackAlong(st.scans[j], out_axes[j], out_dirs[j] != 0, &out));
      }
    }
    return absl::OkStatus();
  });
}

}  // namespace exec
}  // namespace qat
