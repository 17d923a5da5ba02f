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

namespace {

struct ScanSpec {
  int num_states = 0, num_scan_inputs = 0, num_scan_outputs = 0;
  std::vector<int64_t> in_dirs, out_axes, out_dirs;
};

struct ScanState {
  std::vector<Tensor> results[2];  // iteration t writes results[t % 2]
  std::vector<Tensor> slices;
  std::vector<std::vector<Tensor>> scans;
};

// The scan loop shared by every opset: `length` iterations over slices of
// scan_inputs along `axes` (reversed per in_dirs), final states into
// out_states and the stacked scan outputs into out_scans.
absl::Status RunScanLoop(Subgraph& body, const ScanSpec& spec,
                         const std::vector<const Tensor*>& states,
                         const std::vector<const Tensor*>& scan_inputs,
                         const std::vector<int64_t>& axes, int64_t length,
                         absl::Span<const Tensor* const> outer, ThreadPool* pool, uint64_t seed,
                         ScanState& st, const std::vector<Tensor*>& out_states,
                         const std::vector<Tensor*>& out_scans) {
  const int num_states = spec.num_states;
  std::vector<const Tensor*> args(states);
  st.slices.resize(spec.num_scan_inputs);
  for (int i = 0; i < spec.num_scan_inputs; ++i) args.push_back(&st.slices[i]);
  st.scans.assign(spec.num_scan_outputs, {});
  for (int64_t t = 0; t < length; ++t) {
    for (int i = 0; i < spec.num_scan_inputs; ++i) {
      SliceAlong(*scan_inputs[i], axes[i], spec.in_dirs[i] != 0 ? length - 1 - t : t,
                 &st.slices[i]);
    }
    std::vector<Tensor>& out = st.results[t % 2];
    QAT_RETURN_IF_ERROR(
        InSubgraph("body", body.Run(args, outer, pool, SplitMix64(seed + t), &out)));
    for (int s = 0; s < num_states; ++s) args[s] = &out[s];
    for (int j = 0; j < spec.num_scan_outputs; ++j) {
      st.scans[j].push_back(std::move(out[num_states + j]));
    }
  }
  for (int s = 0; s < num_states; ++s) {
    if (length == 0) {
      *out_states[s] = *args[s];
    } else {
      std::swap(*out_states[s], st.results[(length - 1) % 2][s]);
    }
  }
  for (int j = 0; j < spec.num_scan_outputs; ++j) {
    if (st.scans[j].empty()) {
      out_scans[j]->Resize(DataType::kFloat32, {0});
    } else {
      QAT_RETURN_IF_ERROR(StackAlong(st.scans[j], spec.out_axes[j], spec.out_dirs[j] != 0,
                                     out_scans[j]));
    }
  }
  return absl::OkStatus();
}

// x (rank >= 1) zero-padded along axis 0 to `length`.
void PadRows(const Tensor& x, int64_t length, Tensor* out) {
  std::vector<int64_t> shape = x.shape();
  const size_t row = x.num_elements() == 0 ? 0 : x.num_bytes() / static_cast<size_t>(shape[0]);
  const int64_t rows = shape[0];
  shape[0] = length;
  out->Resize(x.dtype(), shape);
  std::memset(out->raw_data(), 0, out->num_bytes());
  if (rows > 0) std::memcpy(out->raw_data(), x.raw_data(), row * static_cast<size_t>(rows));
}

}  // namespace

// Scan: the body takes (states..., one slice of each scan input) and
// returns (states..., one slice of each scan output).  Opset 8's Scan has a
// batch axis 0 before the scanned axis 1 and an optional sequence_lens
// first input; each batch row then runs the loop of its own length, and
// its scan outputs are zero-padded to the longest.
absl::StatusOr<Kernel> MakeScan(const NodeView& node) {
  const bool batched = node.opset() < 9;
  QAT_ASSIGN_OR_RETURN(std::shared_ptr<Subgraph> body, node.CompileSubgraph("body"));
  const int num_inputs = node.num_inputs();
  const int first = batched ? 1 : 0;  // Scan-8's sequence_lens
  const int64_t num_scan_inputs = node.GetInt("num_scan_inputs", -1);
  if (num_scan_inputs < 1 || num_scan_inputs > num_inputs - first) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_scan_inputs is ", num_scan_inputs, "; it must lie in [1, ", num_inputs - first,
        "]"));
  }
  ScanSpec spec;
  spec.num_scan_inputs = static_cast<int>(num_scan_inputs);
  spec.num_states = num_inputs - first - spec.num_scan_inputs;
  spec.num_scan_outputs = body->num_outputs() - spec.num_states;
  if (body->num_inputs() != num_inputs - first || spec.num_scan_outputs < 0 ||
      node.num_outputs() > body->num_outputs()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Scan's body has ", body->num_inputs(), " inputs and ", body->num_outputs(),
        " outputs for ", num_inputs - first, " state and scanned inputs of which ",
        num_scan_inputs, " are scanned"));
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
  std::vector<int64_t> in_axes(spec.num_scan_inputs, 0);
  if (batched) {
    QAT_ASSIGN_OR_RETURN(spec.in_dirs, list("directions", num_scan_inputs));
    spec.out_axes.assign(spec.num_scan_outputs, 0);
    spec.out_dirs.assign(spec.num_scan_outputs, 0);
  } else {
    QAT_ASSIGN_OR_RETURN(in_axes, list("scan_input_axes", num_scan_inputs));
    QAT_ASSIGN_OR_RETURN(spec.in_dirs, list("scan_input_directions", num_scan_inputs));
    QAT_ASSIGN_OR_RETURN(spec.out_axes, list("scan_output_axes", spec.num_scan_outputs));
    QAT_ASSIGN_OR_RETURN(spec.out_dirs, list("scan_output_directions", spec.num_scan_outputs));
  }
  auto state = std::make_shared<ScanState>();
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    ScanState& st = *state;
    for (int i = first; i < num_inputs; ++i) QAT_RETURN_IF_ERROR(RequireInput(ctx, i));
    const int num_states = spec.num_states;
    std::vector<const Tensor*> states(ctx.inputs.begin() + first,
                                      ctx.inputs.begin() + first + num_states);
    std::vector<const Tensor*> scan_inputs(ctx.inputs.begin() + first + num_states,
                                           ctx.inputs.begin() + num_inputs);
    std::vector<Tensor*> out_states, out_scans;
    for (int s = 0; s < num_states; ++s) out_states.push_back(&ctx.output(s));
    for (int j = 0; j < spec.num_scan_outputs; ++j) {
      out_scans.push_back(&ctx.output(num_states + j));
    }
    const int seq_axis = batched ? 1 : 0;
    std::vector<int64_t> axes(spec.num_scan_inputs);
    int64_t length = -1;
    for (int i = 0; i < spec.num_scan_inputs; ++i) {
      const Tensor& x = *scan_inputs[i];
      if (x.rank() <= seq_axis) {
        return absl::InvalidArgumentError(absl::StrCat("scan input ", i, " has rank ", x.rank()));
      }
      QAT_ASSIGN_OR_RETURN(axes[i], NormalizeAxis(batched ? 0 : in_axes[i], x.rank() - seq_axis));
      const int64_t n = x.shape()[axes[i] + seq_axis];
      if (length >= 0 && n != length) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the scan inputs have different lengths: ", length, " and ", n));
      }
      length = n;
    }
    if (!batched) {
      return RunScanLoop(*body, spec, states, scan_inputs, axes, length,
                         Outer(ctx, num_inputs), ctx.pool, ctx.seed, st, out_states, out_scans);
    }
    // Scan-8: one loop per batch row, on that row's slices.
    const int64_t batch = scan_inputs[0]->dim(0);
    if (batch == 0) return absl::InvalidArgumentError("Scan's batch is empty");
    for (const Tensor* t : states) {
      if (t->rank() == 0 || t->dim(0) != batch) {
        return absl::InvalidArgumentError("every state must have the batch axis first");
      }
    }
    for (const Tensor* t : scan_inputs) {
      if (t->dim(0) != batch) {
        return absl::InvalidArgumentError("every scan input must have the batch axis first");
      }
    }
    QAT_ASSIGN_OR_RETURN(
        const std::vector<int64_t> lens,
        ReadSequenceLengths(ctx.has_input(0) ? &ctx.input(0) : nullptr, batch, length));
    std::vector<Tensor> row_states(num_states), row_inputs(spec.num_scan_inputs);
    std::vector<std::vector<Tensor>> final_states(num_states), scans(spec.num_scan_outputs);
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<const Tensor*> s_ptrs, x_ptrs;
      for (int s = 0; s < num_states; ++s) {
        SliceAlong(*states[s], 0, b, &row_states[s]);
        s_ptrs.push_back(&row_states[s]);
      }
      for (int i = 0; i < spec.num_scan_inputs; ++i) {
        SliceAlong(*scan_inputs[i], 0, b, &row_inputs[i]);
        x_ptrs.push_back(&row_inputs[i]);
      }
      std::vector<Tensor> s_out(num_states), x_out(spec.num_scan_outputs);
      std::vector<Tensor*> s_out_ptrs, x_out_ptrs;
      for (Tensor& t : s_out) s_out_ptrs.push_back(&t);
      for (Tensor& t : x_out) x_out_ptrs.push_back(&t);
      QAT_RETURN_IF_ERROR(RunScanLoop(*body, spec, s_ptrs, x_ptrs, axes, lens[b],
                                      Outer(ctx, num_inputs), ctx.pool,
                                      SplitMix64(ctx.seed + b), st, s_out_ptrs, x_out_ptrs));
      for (int s = 0; s < num_states; ++s) final_states[s].push_back(std::move(s_out[s]));
      for (int j = 0; j < spec.num_scan_outputs; ++j) {
        Tensor padded;
        PadRows(x_out[j], length, &padded);
        scans[j].push_back(std::move(padded));
      }
    }
    for (int s = 0; s < num_states; ++s) {
      QAT_RETURN_IF_ERROR(StackAlong(final_states[s], 0, false, out_states[s]));
    }
    for (int j = 0; j < spec.num_scan_outputs; ++j) {
      QAT_RETURN_IF_ERROR(StackAlong(scans[j], 0, false, out_scans[j]));
    }
    return absl::OkStatus();
  });
}

}  // namespace exec
}  // namespace qat
