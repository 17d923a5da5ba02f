// Gradient rules for ops that only move elements around.
#include <numeric>

#include "absl/strings/str_cat.h"
#include "qat/status_macros.h"
#include "training/gradient_rules.h"

namespace qat {
namespace training {

absl::Status GradReshapeLike(GradContext& ctx) {
  // Reshape, Flatten, Squeeze, Unsqueeze: the gradient takes the input's
  // shape back, read at run time so that a dynamic batch works.
  const std::string shape = ctx.g().Add("Shape", {ctx.input(0)}, ctx.Hint("shape"));
  ctx.SetInputGrad(0, ctx.g().Reshape(ctx.output_grad(0), shape, ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradTranspose(GradContext& ctx) {
  QAT_ASSIGN_OR_RETURN(ValueShape x, ctx.Shape(ctx.input(0)));
  std::vector<int64_t> perm = GetAttrInts(ctx.node(), "perm");
  if (perm.empty()) {  // default: reverse the axes
    perm.resize(static_cast<size_t>(x.rank()));
    std::iota(perm.rbegin(), perm.rend(), 0);
  }
  std::vector<int64_t> inverse(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inverse[perm[i]] = static_cast<int64_t>(i);
  ctx.SetInputGrad(0, ctx.g().Transpose(ctx.output_grad(0), inverse, ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradConcat(GradContext& ctx) {
  // Split the gradient along the axis into the inputs' sizes.
  QAT_ASSIGN_OR_RETURN(ValueShape y, ctx.Shape(ctx.output(0)));
  int64_t axis = GetAttrInt(ctx.node(), "axis", 0);
  if (axis < 0) axis += y.rank();
  std::vector<int64_t> sizes;
  std::vector<std::string> outs;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    QAT_ASSIGN_OR_RETURN(ValueShape x, ctx.Shape(ctx.input(i)));
    if (axis >= x.rank() || x.dims[axis] < 0) {
      return ctx.Unsupported("Concat whose inputs' sizes along the axis are "
                             "not static");
    }
    sizes.push_back(x.dims[axis]);
    outs.push_back(ctx.g().FreshName(ctx.Hint(absl::StrCat("x", i))));
  }
  std::vector<std::string> inputs = {ctx.output_grad(0)};
  std::vector<onnx::AttributeProto> attrs = {AttrInt("axis", axis)};
  if (ctx.g().opset() >= 13) {
    inputs.push_back(ctx.g().ConstantInt64s(sizes, ctx.Hint("split")));
  } else {
    attrs.push_back(AttrInts("split", sizes));
  }
  ctx.g().AddNode("Split", "", inputs, outs, attrs);
  for (int i = 0; i < ctx.num_inputs(); ++i) ctx.SetInputGrad(i, outs[i]);
  return absl::OkStatus();
}

}  // namespace training
}  // namespace qat
