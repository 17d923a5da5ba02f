// The optimizers of the ai.onnx.preview.training domain: Adagrad, Momentum
// (standard and Nesterov) and Adam, each updating any number of tensors in
// one node, by ONNX's definitions (computed in the tensors' float type):
//
//   inputs  R (learning rate), T (update count), then per tensor X..., G...,
//           and the state (Adagrad H...; Momentum V...; Adam V..., H...)
//   outputs the new X..., then the new state in the same order.
#include <cmath>
#include <string>
#include <vector>

#include "exec/ops/op_util.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

enum class Method { kAdagrad, kMomentum, kNesterov, kAdam };

struct Hyper {
  double norm_coefficient = 0, epsilon = 0, decay_factor = 0, alpha = 0, beta = 0,
         norm_coefficient_post = 0;
};

// One tensor's update: x, g and the state (s1, and s2 for Adam) in, the new
// values out.  r and t are the node's learning rate and update count.
template <typename T>
void Update(Method method, const Hyper& h, double r, int64_t t, int64_t n, const T* x,
            const T* g, const T* s1, const T* s2, T* x_out, T* s1_out, T* s2_out) {
  const T nc = static_cast<T>(h.norm_coefficient), eps = static_cast<T>(h.epsilon);
  const T alpha = static_cast<T>(h.alpha), beta = static_cast<T>(h.beta);
  switch (method) {
    case Method::kAdagrad: {
      const T rate = static_cast<T>(r / (1.0 + static_cast<double>(t) * h.decay_factor));
      for (int64_t i = 0; i < n; ++i) {
        const T gr = nc * x[i] + g[i];
        const T acc = s1[i] + gr * gr;
        s1_out[i] = acc;
        x_out[i] = x[i] - rate * gr / (std::sqrt(acc) + eps);
      }
      break;
    }
    case Method::kMomentum:
    case Method::kNesterov: {
      const T rate = static_cast<T>(r);
      const T beta_adjusted = t > 0 ? beta : T(1);  // the first step takes the whole gradient
      for (int64_t i = 0; i < n; ++i) {
        const T gr = nc * x[i] + g[i];
        const T v = alpha * s1[i] + beta_adjusted * gr;
        s1_out[i] = v;
        x_out[i] = method == Method::kMomentum ? x[i] - rate * v : x[i] - rate * (gr + alpha * v);
      }
      break;
    }
    case Method::kAdam: {
      double adjusted = r;
      if (t > 0) {
        const double td = static_cast<double>(t);
        adjusted = r * std::sqrt(1.0 - std::pow(h.beta, td)) / (1.0 - std::pow(h.alpha, td));
      }
      const T rate = static_cast<T>(adjusted);
      const T post = static_cast<T>(1.0 - h.norm_coefficient_post);
      for (int64_t i = 0; i < n; ++i) {
        const T gr = nc * x[i] + g[i];
        const T v = alpha * s1[i] + (1 - alpha) * gr;
        const T hh = beta * s2[i] + (1 - beta) * gr * gr;
        s1_out[i] = v;
        s2_out[i] = hh;
        x_out[i] = post * (x[i] - rate * (v / (std::sqrt(hh) + eps)));
      }
      break;
    }
  }
}

absl::StatusOr<Kernel> MakeOptimizer(const NodeView& node, Method method, Hyper h) {
  const int states = method == Method::kAdam ? 2 : 1;
  const int groups = 2 + states;  // X, G and the states
  const int tensors = (node.num_inputs() - 2) / groups;
  if (tensors < 1 || node.num_inputs() != 2 + groups * tensors) {
    return absl::InvalidArgumentError(absl::StrCat(
        node.op_type(), " takes R, T and ", groups, " inputs per tensor; got ",
        node.num_inputs(), " inputs"));
  }
  if (node.num_outputs() > (1 + states) * tensors) {
    return absl::InvalidArgumentError(absl::StrCat(node.op_type(), " has at most ",
                                                   (1 + states) * tensors, " outputs"));
  }
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2 + groups * tensors));
    QAT_ASSIGN_OR_RETURN(const double r, ReadScalar(ctx.input(0), "R"));
    QAT_ASSIGN_OR_RETURN(const double t_value, ReadScalar(ctx.input(1), "T"));
    const int64_t t = static_cast<int64_t>(t_value);
    for (int k = 0; k < tensors; ++k) {
      const Tensor& x = ctx.input(2 + k);
      std::vector<const Tensor*> in = {&x};
      for (int s = 1; s < groups; ++s) {
        const Tensor& other = ctx.input(2 + s * tensors + k);
        QAT_RETURN_IF_ERROR(RequireSameType(x, other));
        if (other.shape() != x.shape()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "tensor ", k, " has shape ", ShapeToString(x.shape()), " but its input ",
              2 + s * tensors + k, " has ", ShapeToString(other.shape())));
        }
        in.push_back(&other);
      }
      QAT_RETURN_IF_ERROR(VisitFloat(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        Tensor& x_out = ctx.output(k);
        Tensor& s1_out = ctx.output(tensors + k);
        Tensor& s2_out = ctx.output(states == 2 ? 2 * tensors + k : tensors + k);
        for (Tensor* o : {&x_out, &s1_out, &s2_out}) o->Resize(x.dtype(), x.shape());
        Update<T>(method, h, r, t, x.num_elements(), x.data<T>(), in[1]->data<T>(),
                  in[2]->data<T>(), states == 2 ? in[3]->data<T>() : nullptr, x_out.data<T>(),
                  s1_out.data<T>(), s2_out.data<T>());
        return absl::OkStatus();
      }));
    }
    return absl::OkStatus();
  });
}

}  // namespace

absl::StatusOr<Kernel> MakeAdagrad(const NodeView& node) {
  Hyper h;
  h.norm_coefficient = node.GetFloat("norm_coefficient", 0.0f);
  h.epsilon = node.GetFloat("epsilon", 1e-6f);
  h.decay_factor = node.GetFloat("decay_factor", 0.0f);
  return MakeOptimizer(node, Method::kAdagrad, h);
}

absl::StatusOr<Kernel> MakeMomentum(const NodeView& node) {
  Hyper h;
  h.norm_coefficient = node.GetFloat("norm_coefficient", 0.0f);
  h.alpha = node.GetFloat("alpha", 0.0f);
  h.beta = node.GetFloat("beta", 0.0f);
  const std::string mode = node.GetString("mode", "standard");
  if (mode != "standard" && mode != "nesterov") {
    return absl::InvalidArgumentError(
        absl::StrCat("mode '", mode, "' is not 'standard' or 'nesterov'"));
  }
  return MakeOptimizer(node, mode == "nesterov" ? Method::kNesterov : Method::kMomentum, h);
}

absl::StatusOr<Kernel> MakeAdam(const NodeView& node) {
  Hyper h;
  h.norm_coefficient = node.GetFloat("norm_coefficient", 0.0f);
  h.norm_coefficient_post = node.GetFloat("norm_coefficient_post", 0.0f);
  h.epsilon = node.GetFloat("epsilon", 1e-6f);
  h.alpha = node.GetFloat("alpha", 0.9f);
  h.beta = node.GetFloat("beta", 0.999f);
  return MakeOptimizer(node, Method::kAdam, h);
}

}  // namespace exec
}  // namespace qat
