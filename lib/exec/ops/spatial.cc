#include "exec/ops/spatial.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "exec/ops/op_util.h"

namespace qat {
namespace exec {

WindowAttrs WindowAttrs::FromNode(const NodeView& node) {
  WindowAttrs attrs;
  attrs.kernel_shape = node.GetInts("kernel_shape");
  attrs.strides = node.GetInts("strides");
  attrs.dilations = node.GetInts("dilations");
  attrs.pads = node.GetInts("pads");
  attrs.auto_pad = node.GetString("auto_pad", "NOTSET");
  attrs.ceil_mode = node.GetInt("ceil_mode", 0) != 0;
  return attrs;
}

int64_t Window::in_size() const { return Product(in, 0, in.size()); }
int64_t Window::out_size() const { return Product(out, 0, out.size()); }
int64_t Window::kernel_size() const { return Product(kernel, 0, kernel.size()); }

std::vector<int64_t> KernelOffsets(const Window& w) {
  const size_t dims = w.in.size();
  const int64_t K = w.kernel_size();
  std::vector<int64_t> offsets(K * dims);
  for (int64_t kk = 0; kk < K; ++kk) {
    int64_t rem = kk;
    for (int d = static_cast<int>(dims) - 1; d >= 0; --d) {
      offsets[kk * dims + d] = (rem % w.kernel[d]) * w.dilations[d];
      rem /= w.kernel[d];
    }
  }
  return offsets;
}

void WindowCorner(const Window& w, int64_t p, int64_t* corner) {
  for (int d = static_cast<int>(w.out.size()) - 1; d >= 0; --d) {
    corner[d] = (p % w.out[d]) * w.strides[d] - w.pad_begin[d];
    p /= w.out[d];
  }
}

OutputRange InsideOutputs(int64_t start, int64_t stride, int64_t limit, int64_t count) {
  const int64_t lo = start >= 0 ? 0 : std::min(count, (stride - 1 - start) / stride);
  const int64_t hi = std::max(lo, std::min(count, (limit - start + stride - 1) / stride));
  return {lo, hi};
}

absl::StatusOr<Window> ComputeWindow(const WindowAttrs& attrs,
                                     const std::vector<int64_t>& in,
                                     const std::vector<int64_t>& kernel) {
  const size_t dims = in.size();
  auto sized = [dims](const std::vector<int64_t>& v, int64_t fallback,
                      size_t expected, const char* name) -> absl::StatusOr<std::vector<int64_t>> {
    if (v.empty()) return std::vector<int64_t>(expected, fallback);
    if (v.size() != expected) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, " has ", v.size(), " values, expected ", expected, " for ", dims,
          " spatial dimensions"));
    }
    return v;
  };
  Window w;
  w.in = in;
  auto k = sized(kernel, 1, dims, "kernel_shape");
  auto s = sized(attrs.strides, 1, dims, "strides");
  auto d = sized(attrs.dilations, 1, dims, "dilations");
  auto p = sized(attrs.pads, 0, 2 * dims, "pads");
  for (const auto* r : {&k, &s, &d, &p}) {
    if (!r->ok()) return r->status();
  }
  w.kernel = *k;
  w.strides = *s;
  w.dilations = *d;
  for (size_t i = 0; i < dims; ++i) {
    if (w.kernel[i] < 1 || w.strides[i] < 1 || w.dilations[i] < 1) {
      return absl::InvalidArgumentError(
          "kernel_shape, strides and dilations must be positive");
    }
    if ((*p)[i] < 0 || (*p)[i + dims] < 0) {
      return absl::InvalidArgumentError("pads must not be negative");
    }
  }
  const std::string& mode = attrs.auto_pad;
  if (mode != "NOTSET" && mode != "VALID" && mode != "SAME_UPPER" && mode != "SAME_LOWER") {
    return absl::InvalidArgumentError(absl::StrCat("unknown auto_pad '", mode, "'"));
  }
  for (size_t i = 0; i < dims; ++i) {
    const int64_t span = w.dilations[i] * (w.kernel[i] - 1) + 1;
    int64_t begin = mode == "NOTSET" ? (*p)[i] : 0;
    int64_t end = mode == "NOTSET" ? (*p)[i + dims] : 0;
    if (mode == "SAME_UPPER" || mode == "SAME_LOWER") {
      const int64_t out = (in[i] + w.strides[i] - 1) / w.strides[i];
      const int64_t total = std::max<int64_t>(0, (out - 1) * w.strides[i] + span - in[i]);
      begin = mode == "SAME_UPPER" ? total / 2 : total - total / 2;
      end = total - begin;
    }
    const int64_t padded = in[i] + begin + end;
    if (padded < span) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the window (", span, ") is larger than the padded input (", padded, ")"));
    }
    int64_t out = attrs.ceil_mode ? (padded - span + w.strides[i] - 1) / w.strides[i] + 1
                                  : (padded - span) / w.strides[i] + 1;
    // In ceil mode a last window that would start in the end padding is dropped.
    if (attrs.ceil_mode && (out - 1) * w.strides[i] >= in[i] + begin) --out;
    w.pad_begin.push_back(begin);
    w.pad_end.push_back(end);
    w.out.push_back(out);
  }
  return w;
}

}  // namespace exec
}  // namespace qat
