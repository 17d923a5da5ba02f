// Window geometry shared by Conv, MaxPool and AveragePool: kernel shape,
// strides, dilations and padding (explicit pads or auto_pad), and the output
// size they give.
#ifndef QAT_LIB_EXEC_OPS_SPATIAL_H_
#define QAT_LIB_EXEC_OPS_SPATIAL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "exec/kernel.h"

namespace qat {
namespace exec {

// The attributes, as the node gives them (vectors may be empty: defaults).
struct WindowAttrs {
  std::vector<int64_t> kernel_shape;
  std::vector<int64_t> strides;
  std::vector<int64_t> dilations;
  std::vector<int64_t> pads;  // begin values, then end values
  std::string auto_pad = "NOTSET";
  bool ceil_mode = false;

  static WindowAttrs FromNode(const NodeView& node);
};

// The geometry for one input, every vector with one entry per spatial dim.
struct Window {
  std::vector<int64_t> in, kernel, strides, dilations, pad_begin, pad_end, out;
  int64_t in_size() const;   // product of `in`
  int64_t out_size() const;  // product of `out`
  int64_t kernel_size() const;
};

// `in` is the spatial part of the input shape; `kernel` the kernel shape
// (from the weights for Conv, from the attribute for pooling).
// For each kernel position kk (row-major over the kernel), its offset from
// the window's corner in each dimension: entry kk * dims + d.
std::vector<int64_t> KernelOffsets(const Window& w);

// The first input position (negative inside the begin padding) of the window
// of output position p (row-major over `out`), one value per dimension.
void WindowCorner(const Window& w, int64_t p, int64_t* corner);

// Along one dimension, the outputs o in [lo, hi) of a run of `count` whose
// positions start + o * stride (stride >= 1) lie in [0, limit): those whose
// window, or kernel tap, stays out of the padding.
struct OutputRange {
  int64_t lo, hi;
};
OutputRange InsideOutputs(int64_t start, int64_t stride, int64_t limit, int64_t count);

absl::StatusOr<Window> ComputeWindow(const WindowAttrs& attrs,
                                     const std::vector<int64_t>& in,
                                     const std::vector<int64_t>& kernel);

}  // namespace exec
}  // namespace qat

#endif  // QAT_LIB_EXEC_OPS_SPATIAL_H_
