// Einsum (opset 12): any equation that core/einsum_equation.h parses, with
// numpy's semantics: repeated labels in a term take a diagonal, labels not
// in the output are summed, size-1 axes broadcast (in and out of the
// ellipsis).
//
// The fast path works on one operand at a time, then pairwise from the left:
//   1. Restride: an operand becomes a tensor over a chosen list of distinct
//      labels, in a chosen order; a repeated label reads its diagonal, a
//      label left out is summed (so this is diagonal, sum and transpose).
//   2. Contract: two operands become [batch, m, k] and [batch, k, n] by
//      Restride and multiply through Gemm() (ops/gemm.h), one product per
//      batch entry; k is the labels they share that nothing later needs.
//   3. The last operand is restrided to the output's labels.
// EinsumReference is the plain loop over every combination of labels that
// the tests compare the fast path with.  Both sum in the input's type.
#include "exec/ops/einsum.h"

#include <algorithm>
#include <map>

#include "core/checked_size.h"
#include "core/einsum_equation.h"
#include "exec/ops/gemm.h"
#include "exec/ops/op_util.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

// An operand: its data and the label of each axis.
struct Operand {
  Tensor t;
  std::vector<int> labels;
};

bool Contains(const std::vector<int>& v, int x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// The size of every label (a size-1 axis broadcasts), and the operands with
// their broadcast axes dropped: an operand of size 1 along a label that is
// larger elsewhere does not depend on it.
absl::StatusOr<std::map<int, int64_t>> LabelSizes(const EinsumLabels& labels,
                                                  const std::vector<const Tensor*>& inputs) {
  std::map<int, int64_t> size;
  for (size_t i = 0; i < inputs.size(); ++i) {
    for (size_t a = 0; a < labels.inputs[i].size(); ++a) {
      const int l = labels.inputs[i][a];
      const int64_t d = inputs[i]->dim(static_cast<int>(a));
      auto [it, fresh] = size.emplace(l, d);
      if (fresh || it->second == d || d == 1) continue;
      if (it->second != 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Einsum label of input ", i, " axis ", a, " has size ", d, ", elsewhere ",
            it->second));
      }
      it->second = d;
    }
  }
  return size;
}

// Operand i with its broadcast (size-1, larger elsewhere) axes dropped.
Operand Prepare(const Tensor& x, const std::vector<int>& labels,
                const std::map<int, int64_t>& size) {
  Operand op{x, {}};
  std::vector<int64_t> shape;
  for (size_t a = 0; a < labels.size(); ++a) {
    if (x.dim(static_cast<int>(a)) == 1 && size.at(labels[a]) != 1) continue;
    op.labels.push_back(labels[a]);
    shape.push_back(x.dim(static_cast<int>(a)));
  }
  op.t.Reshape(shape);
  return op;
}

// Step 1: `x` over `keep` (distinct labels of x, in that order), summing the
// labels of x not kept and reading repeated ones on their diagonal.
template <typename T>
Operand Restride(const Operand& x, const std::vector<int>& keep) {
  if (x.labels == keep) return x;
  // The distinct labels of x: the kept ones first, then the summed ones.
  std::vector<int> order = keep;
  for (int l : x.labels) {
    if (!Contains(order, l)) order.push_back(l);
  }
  const std::vector<int64_t> x_strides = ContiguousStrides(x.t.shape());
  std::vector<int64_t> dims(order.size()), in_stride(order.size(), 0);
  for (size_t a = 0; a < x.labels.size(); ++a) {
    const size_t k = std::find(order.begin(), order.end(), x.labels[a]) - order.begin();
    dims[k] = x.t.dim(static_cast<int>(a));
    in_stride[k] += x_strides[a];
  }
  Operand out{Tensor(), keep};
  out.t.Resize(x.t.dtype(), std::vector<int64_t>(dims.begin(), dims.begin() + keep.size()));
  T* po = out.t.data<T>();
  std::fill(po, po + out.t.num_elements(), T(0));
  const T* px = x.t.data<T>();
  // Walk `order` in row-major order: the output index is the walk's prefix.
  const int64_t total = Product(dims, 0, dims.size());
  const int64_t summed = Product(dims, keep.size(), dims.size());
  std::vector<int64_t> idx(order.size(), 0);
  int64_t offset = 0;
  for (int64_t i = 0; i < total; ++i) {
    T& o = po[i / summed];
    o = static_cast<T>(o + px[offset]);
    for (int d = static_cast<int>(order.size()) - 1; d >= 0; --d) {
      offset += in_stride[d];
      if (++idx[d] < dims[d]) break;
      offset -= in_stride[d] * dims[d];
      idx[d] = 0;
    }
  }
  return out;
}

// Step 2: a and b contracted over their shared labels that `later` (the
// output's and the remaining operands' labels) does not need.
template <typename T>
Operand Contract(ThreadPool* pool, const Operand& a, const Operand& b,
                 const std::vector<int>& later) {
  std::vector<int> batch, m, k, n;
  for (int l : a.labels) {
    if (Contains(batch, l) || Contains(m, l) || Contains(k, l)) continue;
    const bool needed = Contains(later, l);
    if (Contains(b.labels, l)) {
      (needed ? batch : k).push_back(l);
    } else if (needed) {
      m.push_back(l);
    }
  }
  for (int l : b.labels) {
    if (!Contains(a.labels, l) && !Contains(n, l) && Contains(later, l)) n.push_back(l);
  }
  auto concat = [](std::vector<int> x, const std::vector<int>& y, const std::vector<int>& z) {
    x.insert(x.end(), y.begin(), y.end());
    x.insert(x.end(), z.begin(), z.end());
    return x;
  };
  const Operand ra = Restride<T>(a, concat(batch, m, k));
  const Operand rb = Restride<T>(b, concat(batch, k, n));
  const auto& sa = ra.t.shape();
  const auto& sb = rb.t.shape();
  const size_t nb = batch.size();
  const GemmShape shape{Product(sa, nb, nb + m.size()), Product(sa, nb + m.size(), sa.size()),
                        Product(sb, nb + k.size(), sb.size()), false, false};
  std::vector<int64_t> out_shape(sa.begin(), sa.begin() + nb + m.size());
  out_shape.insert(out_shape.end(), sb.begin() + nb + k.size(), sb.end());
  Operand out{Tensor(), concat(batch, m, n)};
  out.t.Resize(a.t.dtype(), out_shape);
  const T* pa = ra.t.data<T>();
  const T* pb = rb.t.data<T>();
  T* pc = out.t.data<T>();
  for (int64_t i = 0, count = Product(sa, 0, nb); i < count; ++i) {
    Gemm(pool, shape, pa + i * shape.m * shape.k, pb + i * shape.k * shape.n,
         pc + i * shape.m * shape.n);
  }
  return out;
}

template <typename T>
absl::Status EinsumFast(ThreadPool* pool, const EinsumLabels& labels,
                        const std::map<int, int64_t>& size,
                        const std::vector<const Tensor*>& inputs, Tensor* out) {
  std::vector<Operand> ops;
  for (size_t i = 0; i < inputs.size(); ++i) {
    ops.push_back(Prepare(*inputs[i], labels.inputs[i], size));
  }
  Operand acc = ops[0];
  for (size_t i = 1; i < ops.size(); ++i) {
    std::vector<int> later = labels.output;
    for (size_t j = i + 1; j < ops.size(); ++j) {
      later.insert(later.end(), ops[j].labels.begin(), ops[j].labels.end());
    }
    acc = Contract<T>(pool, acc, ops[i], later);
  }
  // Output labels that no operand kept were broadcast from size 1.
  std::vector<int> kept;
  for (int l : labels.output) {
    if (Contains(acc.labels, l)) kept.push_back(l);
  }
  Operand result = Restride<T>(acc, kept);
  std::vector<int64_t> out_shape;
  for (int l : labels.output) out_shape.push_back(Contains(kept, l) ? size.at(l) : 1);
  *out = std::move(result.t);
  out->Reshape(out_shape);
  return absl::OkStatus();
}

template <typename T>
absl::Status EinsumPlain(const EinsumLabels& labels, const std::map<int, int64_t>& size,
                         const std::vector<const Tensor*>& inputs, Tensor* out) {
  // Every label, the output's first; each operand's and the output's stride
  // per label (0 where it does not have it or broadcasts it).
  std::vector<int> all = labels.output;
  for (const auto& [l, d] : size) {
    if (!Contains(all, l)) all.push_back(l);
  }
  std::vector<int64_t> dims;
  for (int l : all) dims.push_back(size.at(l));
  std::vector<int64_t> out_shape(dims.begin(), dims.begin() + labels.output.size());
  out->Resize(inputs[0]->dtype(), out_shape);
  T* po = out->data<T>();
  std::fill(po, po + out->num_elements(), T(0));
  std::vector<std::vector<int64_t>> strides(inputs.size(), std::vector<int64_t>(all.size(), 0));
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::vector<int64_t> own = ContiguousStrides(inputs[i]->shape());
    for (size_t a = 0; a < labels.inputs[i].size(); ++a) {
      if (inputs[i]->dim(static_cast<int>(a)) == 1) continue;
      const size_t k = std::find(all.begin(), all.end(), labels.inputs[i][a]) - all.begin();
      strides[i][k] += own[a];
    }
  }
  const int64_t total = Product(dims, 0, dims.size());
  const int64_t summed = Product(dims, out_shape.size(), dims.size());
  std::vector<int64_t> idx(all.size(), 0);
  for (int64_t flat = 0; flat < total; ++flat) {
    T product = T(1);
    for (size_t i = 0; i < inputs.size(); ++i) {
      int64_t offset = 0;
      for (size_t k = 0; k < all.size(); ++k) offset += idx[k] * strides[i][k];
      product = static_cast<T>(product * inputs[i]->data<T>()[offset]);
    }
    po[flat / summed] = static_cast<T>(po[flat / summed] + product);
    for (int d = static_cast<int>(all.size()) - 1; d >= 0; --d) {
      if (++idx[d] < dims[d]) break;
      idx[d] = 0;
    }
  }
  return absl::OkStatus();
}

absl::Status RunEinsum(ThreadPool* pool, const std::string& equation,
                       const std::vector<const Tensor*>& inputs, Tensor* out, bool reference) {
  if (inputs.empty()) return absl::InvalidArgumentError("Einsum needs at least one input");
  QAT_ASSIGN_OR_RETURN(const EinsumTerms terms, ParseEinsum(equation, inputs.size()));
  std::vector<int64_t> ranks;
  for (const Tensor* t : inputs) {
    QAT_RETURN_IF_ERROR(RequireSameType(*inputs[0], *t));
    ranks.push_back(t->rank());
  }
  QAT_ASSIGN_OR_RETURN(const EinsumLabels labels, ResolveEinsum(terms, ranks));
  QAT_ASSIGN_OR_RETURN(const auto size, LabelSizes(labels, inputs));
  // Every intermediate is at most the output or an input (or their
  // restrided copies), but the plain loop walks every combination.
  std::vector<int64_t> out_shape, all_dims;
  for (int l : labels.output) out_shape.push_back(size.at(l));
  for (const auto& [l, d] : size) all_dims.push_back(d);
  QAT_RETURN_IF_ERROR(CheckedElementCount(out_shape).status());
  if (reference) QAT_RETURN_IF_ERROR(CheckedElementCount(all_dims).status());
  return VisitNumeric(inputs[0]->dtype(), [&](auto tag) {
    using T = decltype(tag);
    return reference ? EinsumPlain<T>(labels, size, inputs, out)
                     : EinsumFast<T>(pool, labels, size, inputs, out);
  });
}

}  // namespace

absl::Status Einsum(ThreadPool* pool, const std::string& equation,
                    const std::vector<const Tensor*>& inputs, Tensor* out) {
  return RunEinsum(pool, equation, inputs, out, /*reference=*/false);
}

absl::Status EinsumReference(const std::string& equation,
                             const std::vector<const Tensor*>& inputs, Tensor* out) {
  return RunEinsum(nullptr, equation, inputs, out, /*reference=*/true);
}

absl::StatusOr<Kernel> MakeEinsum(const NodeView& node) {
  const std::string equation = node.GetString("equation", "");
  // A malformed equation fails when the executor is created.
  QAT_RETURN_IF_ERROR(ParseEinsum(equation, node.num_inputs()).status());
  return Kernel([equation](KernelContext& ctx) -> absl::Status {
    std::vector<const Tensor*> inputs;
    for (int i = 0; i < ctx.num_inputs(); ++i) {
      QAT_RETURN_IF_ERROR(RequireInput(ctx, i));
      inputs.push_back(&ctx.input(i));
    }
    return Einsum(ctx.pool, equation, inputs, &ctx.output(0));
  });
}

}  // namespace exec
}  // namespace qat
