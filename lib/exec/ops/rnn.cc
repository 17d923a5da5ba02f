// Recurrent layers: RNN, GRU, LSTM (ONNX's equations, gate orders and
// defaults), forward, reverse or bidirectional, with sequence_lens, initial
// states, peepholes, clip, GRU's linear_before_reset, LSTM's input_forget,
// opset 14's layout, and the activations attribute.  A plain reference: one
// batch row at a time, gates accumulated in the input's type.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "exec/ops/op_util.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

enum class Cell { kRnn, kGru, kLstm };

struct Activation {
  enum Kind {
    kRelu, kTanh, kSigmoid, kAffine, kLeakyRelu, kThresholdedRelu, kScaledTanh,
    kHardSigmoid, kElu, kSoftsign, kSoftplus
  } kind;
  double alpha = 0, beta = 0;

  template <typename T>
  T operator()(T x) const {
    const T a = static_cast<T>(alpha), b = static_cast<T>(beta);
    switch (kind) {
      case kRelu: return std::max<T>(x, 0);
      case kTanh: return std::tanh(x);
      case kSigmoid: return 1 / (1 + std::exp(-x));
      case kAffine: return a * x + b;
      case kLeakyRelu: return x >= 0 ? x : a * x;
      case kThresholdedRelu: return x > a ? x : 0;
      case kScaledTanh: return a * std::tanh(b * x);
      case kHardSigmoid: return std::max<T>(0, std::min<T>(1, a * x + b));
      case kElu: return x >= 0 ? x : a * (std::exp(x) - 1);
      case kSoftsign: return x / (1 + std::abs(x));
      case kSoftplus: return std::log1p(std::exp(x));
    }
    return x;
  }
};

// Parses `activations` (per direction, the cell's functions in order) and
// hands out activation_alpha / activation_beta in that order to the
// functions that take them, as ONNX Runtime does.
absl::StatusOr<std::vector<Activation>> ParseActivations(const NodeView& node,
                                                         std::vector<std::string> defaults,
                                                         int dirs) {
  std::vector<std::string> names;
  if (const auto* attr = node.Find("activations")) {
    for (const auto& s : attr->strings()) names.push_back(s);
  }
  const size_t per_dir = defaults.size();
  if (names.empty()) {
    for (int d = 0; d < dirs; ++d) names.insert(names.end(), defaults.begin(), defaults.end());
  } else if (names.size() == per_dir && dirs == 2) {
    std::vector<std::string> both = names;
    names.insert(names.end(), both.begin(), both.end());
  }
  if (names.size() != per_dir * dirs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "activations has ", names.size(), " functions; ", node.op_type(), " needs ",
        per_dir * dirs));
  }
  const std::vector<float> alphas = node.GetFloats("activation_alpha");
  const std::vector<float> betas = node.GetFloats("activation_beta");
  size_t next_alpha = 0, next_beta = 0;
  std::vector<Activation> result;
  for (const std::string& name : names) {
    struct Known {
      const char* name;
      Activation::Kind kind;
      bool has_alpha, has_beta;
      double alpha, beta;
    };
    static const Known kKnown[] = {
        {"Relu", Activation::kRelu, false, false, 0, 0},
        {"Tanh", Activation::kTanh, false, false, 0, 0},
        {"Sigmoid", Activation::kSigmoid, false, false, 0, 0},
        {"Affine", Activation::kAffine, true, true, 1, 0},
        {"LeakyRelu", Activation::kLeakyRelu, true, false, 0.01, 0},
        {"ThresholdedRelu", Activation::kThresholdedRelu, true, false, 1, 0},
        {"ScaledTanh", Activation::kScaledTanh, true, true, 1, 1},
        {"HardSigmoid", Activation::kHardSigmoid, true, true, 0.2, 0.5},
        {"Elu", Activation::kElu, true, false, 1, 0},
        {"Softsign", Activation::kSoftsign, false, false, 0, 0},
        {"Softplus", Activation::kSoftplus, false, false, 0, 0},
    };
    const Known* known = nullptr;
    for (const Known& k : kKnown) {
      if (absl::AsciiStrToLower(name) == absl::AsciiStrToLower(k.name)) known = &k;
    }
    if (known == nullptr) {
      return absl::UnimplementedError(absl::StrCat("activation '", name, "' is not supported"));
    }
    Activation act{known->kind, known->alpha, known->beta};
    if (known->has_alpha && next_alpha < alphas.size()) act.alpha = alphas[next_alpha++];
    if (known->has_beta && next_beta < betas.size()) act.beta = betas[next_beta++];
    result.push_back(act);
  }
  return result;
}

struct Config {
  Cell cell;
  int gates;
  int64_t hidden;  // -1: from R's shape
  int dirs;
  bool reverse;  // direction "reverse" (one direction)
  std::vector<Activation> acts;  // gates' functions, per direction
  double clip;  // <= 0: none
  bool linear_before_reset;
  bool input_forget;
  int64_t layout;
};

template <typename T>
absl::Status RunRecurrent(const Config& cfg, KernelContext& ctx) {
  QAT_RETURN_IF_ERROR(RequireInputs(ctx, 3));
  const Tensor& X = ctx.input(0);
  const Tensor& W = ctx.input(1);
  const Tensor& R = ctx.input(2);
  if (X.rank() != 3 || W.rank() != 3 || R.rank() != 3) {
    return absl::InvalidArgumentError("X, W and R must have rank 3");
  }
  QAT_RETURN_IF_ERROR(RequireSameType(X, W));
  QAT_RETURN_IF_ERROR(RequireSameType(X, R));
  const int64_t seq = X.shape()[cfg.layout == 0 ? 0 : 1];
  const int64_t batch = X.shape()[cfg.layout == 0 ? 1 : 0];
  const int64_t in = X.shape()[2];
  const int64_t H = cfg.hidden >= 0 ? cfg.hidden : R.shape()[2];
  const int64_t G = cfg.gates;
  const int dirs = cfg.dirs;
  auto require_shape = [](const Tensor& t, std::vector<int64_t> shape,
                          const char* what) -> absl::Status {
    if (t.shape() == shape) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(what, " must have shape ",
                                                   ShapeToString(shape), ", got ",
                                                   ShapeToString(t.shape())));
  };
  QAT_RETURN_IF_ERROR(require_shape(W, {dirs, G * H, in}, "W"));
  QAT_RETURN_IF_ERROR(require_shape(R, {dirs, G * H, H}, "R"));
  const T* B = nullptr;
  if (ctx.has_input(3)) {
    QAT_RETURN_IF_ERROR(RequireSameType(X, ctx.input(3)));
    QAT_RETURN_IF_ERROR(require_shape(ctx.input(3), {dirs, 2 * G * H}, "B"));
    B = ctx.input(3).data<T>();
  }
  QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> lens,
                       ReadSequenceLengths(ctx.has_input(4) ? &ctx.input(4) : nullptr, batch, seq));
  const std::vector<int64_t> state_shape =
      cfg.layout == 0 ? std::vector<int64_t>{dirs, batch, H} : std::vector<int64_t>{batch, dirs, H};
  auto optional_state = [&](int i, const char* what) -> absl::StatusOr<const T*> {
    if (!ctx.has_input(i)) return nullptr;
    QAT_RETURN_IF_ERROR(RequireSameType(X, ctx.input(i)));
    QAT_RETURN_IF_ERROR(require_shape(ctx.input(i), state_shape, what));
    return ctx.input(i).data<T>();
  };
  QAT_ASSIGN_OR_RETURN(const T* h0, optional_state(5, "initial_h"));
  const T* c0 = nullptr;
  const T* P = nullptr;
  if (cfg.cell == Cell::kLstm) {
    QAT_ASSIGN_OR_RETURN(c0, optional_state(6, "initial_c"));
    if (ctx.has_input(7)) {
      QAT_RETURN_IF_ERROR(RequireSameType(X, ctx.input(7)));
      QAT_RETURN_IF_ERROR(require_shape(ctx.input(7), {dirs, 3 * H}, "P"));
      P = ctx.input(7).data<T>();
    }
  }

  Tensor& Y = ctx.output(0);
  Y.Resize(X.dtype(), cfg.layout == 0 ? std::vector<int64_t>{seq, dirs, batch, H}
                                      : std::vector<int64_t>{batch, seq, dirs, H});
  std::fill_n(Y.data<T>(), Y.num_elements(), T(0));
  Tensor& Yh = ctx.output(1);
  Yh.Resize(X.dtype(), state_shape);
  Tensor& Yc = ctx.output(2);
  if (cfg.cell == Cell::kLstm) Yc.Resize(X.dtype(), state_shape);

  const T* x = X.data<T>();
  auto x_at = [&](int64_t t, int64_t b) {
    return x + (cfg.layout == 0 ? t * batch + b : b * seq + t) * in;
  };
  auto y_at = [&](int64_t t, int d, int64_t b) {
    return Y.data<T>() + (cfg.layout == 0 ? (t * dirs + d) * batch + b : (b * seq + t) * dirs + d) * H;
  };
  auto state_at = [&](int d, int64_t b) {
    return (cfg.layout == 0 ? d * batch + b : b * dirs + d) * H;
  };
  const size_t nacts = cfg.acts.size() / dirs;
  const T clip = static_cast<T>(cfg.clip);
  auto clipped = [&](T v) { return cfg.clip > 0 ? std::min(clip, std::max(-clip, v)) : v; };
  std::vector<T> h(H), c(H), xw(G * H), rh(G * H), rhh(H), hn(H);
  for (int d = 0; d < dirs; ++d) {
    const bool reverse = cfg.reverse || d == 1;
    const T* w = W.data<T>() + d * G * H * in;
    const T* r = R.data<T>() + d * G * H * H;
    const T* wb = B != nullptr ? B + d * 2 * G * H : nullptr;
    const T* rb = B != nullptr ? wb + G * H : nullptr;
    const T* p = P != nullptr ? P + d * 3 * H : nullptr;
    const Activation* f = &cfg.acts[d * nacts];
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t j = 0; j < H; ++j) {
        h[j] = h0 != nullptr ? h0[state_at(d, b) + j] : T(0);
        c[j] = c0 != nullptr ? c0[state_at(d, b) + j] : T(0);
      }
      const int64_t len = lens[b];
      for (int64_t s = 0; s < len; ++s) {
        const int64_t t = reverse ? len - 1 - s : s;
        const T* xt = x_at(t, b);
        for (int64_t j = 0; j < G * H; ++j) {
          T acc = wb != nullptr ? wb[j] : T(0);
          for (int64_t k = 0; k < in; ++k) acc += xt[k] * w[j * in + k];
          xw[j] = acc;
          T rec = rb != nullptr ? rb[j] : T(0);
          for (int64_t k = 0; k < H; ++k) rec += h[k] * r[j * H + k];
          rh[j] = rec;
        }
        switch (cfg.cell) {
          case Cell::kRnn:
            for (int64_t j = 0; j < H; ++j) hn[j] = f[0](clipped(xw[j] + rh[j]));
            break;
          case Cell::kGru: {
            // Gates z, r, h; rh[2H..] already holds h_{t-1} R_h^T + Rb_h.
            std::vector<T>& rgate = rhh;
            for (int64_t j = 0; j < H; ++j) rgate[j] = f[0](clipped(xw[H + j] + rh[H + j]));
            for (int64_t j = 0; j < H; ++j) {
              T cand;
              if (cfg.linear_before_reset) {
                cand = xw[2 * H + j] + rgate[j] * rh[2 * H + j];
              } else {
                T acc = rb != nullptr ? rb[2 * H + j] : T(0);
                for (int64_t k = 0; k < H; ++k) acc += rgate[k] * h[k] * r[(2 * H + j) * H + k];
                cand = xw[2 * H + j] + acc;
              }
              const T z = f[0](clipped(xw[j] + rh[j]));
              hn[j] = (1 - z) * f[1](clipped(cand)) + z * h[j];
            }
            break;
          }
          case Cell::kLstm:
            // Gates i, o, f, c; peepholes P = [Pi, Po, Pf].
            for (int64_t j = 0; j < H; ++j) {
              const T pi = p != nullptr ? p[j] : T(0);
              const T po = p != nullptr ? p[H + j] : T(0);
              const T pf = p != nullptr ? p[2 * H + j] : T(0);
              const T i = f[0](clipped(xw[j] + rh[j] + pi * c[j]));
              const T fg = cfg.input_forget ? 1 - i
                                            : f[0](clipped(xw[2 * H + j] + rh[2 * H + j] + pf * c[j]));
              const T cand = f[1](clipped(xw[3 * H + j] + rh[3 * H + j]));
              const T cn = fg * c[j] + i * cand;
              const T o = f[0](clipped(xw[H + j] + rh[H + j] + po * cn));
              c[j] = cn;
              hn[j] = o * f[2](cn);
            }
            break;
        }
        std::copy(hn.begin(), hn.end(), h.begin());
        std::copy(h.begin(), h.end(), y_at(t, d, b));
      }
      // A row of length 0 has no last state: zeros, as ONNX Runtime gives.
      if (len == 0) {
        std::fill(h.begin(), h.end(), T(0));
        std::fill(c.begin(), c.end(), T(0));
      }
      std::copy(h.begin(), h.end(), Yh.data<T>() + state_at(d, b));
      if (cfg.cell == Cell::kLstm) std::copy(c.begin(), c.end(), Yc.data<T>() + state_at(d, b));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Kernel> MakeRecurrent(const NodeView& node, Cell cell) {
  Config cfg;
  cfg.cell = cell;
  std::vector<std::string> defaults;
  switch (cell) {
    case Cell::kRnn: cfg.gates = 1; defaults = {"Tanh"}; break;
    case Cell::kGru: cfg.gates = 3; defaults = {"Sigmoid", "Tanh"}; break;
    case Cell::kLstm: cfg.gates = 4; defaults = {"Sigmoid", "Tanh", "Tanh"}; break;
  }
  const std::string direction = node.GetString("direction", "forward");
  if (direction != "forward" && direction != "reverse" && direction != "bidirectional") {
    return absl::InvalidArgumentError(absl::StrCat("direction '", direction, "' is not "
                                                   "forward, reverse or bidirectional"));
  }
  cfg.dirs = direction == "bidirectional" ? 2 : 1;
  cfg.reverse = direction == "reverse";
  cfg.hidden = node.GetInt("hidden_size", -1);
  if (node.HasAttr("hidden_size") && cfg.hidden <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("hidden_size is ", cfg.hidden, "; it must be positive"));
  }
  QAT_ASSIGN_OR_RETURN(cfg.acts, ParseActivations(node, defaults, cfg.dirs));
  cfg.clip = node.GetFloat("clip", 0.0f);
  cfg.linear_before_reset = node.GetInt("linear_before_reset", 0) != 0;
  cfg.input_forget = node.GetInt("input_forget", 0) != 0;
  cfg.layout = node.GetInt("layout", 0);
  if (cfg.layout != 0 && cfg.layout != 1) {
    return absl::InvalidArgumentError(absl::StrCat("layout is ", cfg.layout, "; it must be 0 or 1"));
  }
  return Kernel([cfg](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    return VisitFloat(ctx.input(0).dtype(),
                      [&](auto tag) { return RunRecurrent<decltype(tag)>(cfg, ctx); });
  });
}

}  // namespace

absl::StatusOr<Kernel> MakeRnn(const NodeView& node) { return MakeRecurrent(node, Cell::kRnn); }
absl::StatusOr<Kernel> MakeGru(const NodeView& node) { return MakeRecurrent(node, Cell::kGru); }
absl::StatusOr<Kernel> MakeLstm(const NodeView& node) { return MakeRecurrent(node, Cell::kLstm); }

}  // namespace exec
}  // namespace qat
