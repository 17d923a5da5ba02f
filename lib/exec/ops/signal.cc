// Signal processing (opset 17): DFT, STFT, the Hann, Hamming and Blackman
// windows, MelWeightMatrix.  A plain reference: each transform is the direct
// O(n^2) sum in double, with the twiddle factors of its length computed once
// per call.  Complex values are a trailing axis of 2 (real, imaginary); a
// trailing axis of 1 is a real signal.
#include <cmath>
#include <complex>
#include <vector>

#include "exec/ops/op_util.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

constexpr double kPi = 3.14159265358979323846;

// The DFT of x (length n) at bins [0, bins): X[k] = sum_j x[j] w^(jk),
// w = exp(-2 pi i / n) (exp(+2 pi i / n) and a factor 1/n when inverse).
class Dft {
 public:
  Dft(int64_t n, bool inverse) : n_(n), inverse_(inverse), twiddle_(static_cast<size_t>(n)) {
    const double sign = inverse ? 1.0 : -1.0;
    for (int64_t j = 0; j < n; ++j) {
      const double angle = sign * 2.0 * kPi * static_cast<double>(j) / static_cast<double>(n);
      twiddle_[j] = {std::cos(angle), std::sin(angle)};
    }
  }
  void Run(const std::vector<std::complex<double>>& x, int64_t bins,
           std::vector<std::complex<double>>* out) const {
    out->assign(static_cast<size_t>(bins), {0.0, 0.0});
    for (int64_t k = 0; k < bins; ++k) {
      std::complex<double> sum = 0;
      int64_t index = 0;  // j * k mod n
      for (int64_t j = 0; j < n_; ++j) {
        sum += x[j] * twiddle_[index];
        index += k;
        if (index >= n_) index %= n_;
      }
      (*out)[k] = inverse_ ? sum / static_cast<double>(n_) : sum;
    }
  }

 private:
  int64_t n_;
  bool inverse_;
  std::vector<std::complex<double>> twiddle_;
};

absl::StatusOr<int64_t> ReadLength(const Tensor& t, const char* what) {
  QAT_ASSIGN_OR_RETURN(std::vector<int64_t> v, ReadIndices(t, what));
  if (v.size() != 1 || v[0] < 1) {
    return absl::InvalidArgumentError(absl::StrCat(what, " must be one positive integer"));
  }
  return v[0];
}

// The output type of a window or MelWeightMatrix (output_datatype).
absl::StatusOr<DataType> OutputType(const NodeView& node) {
  const int64_t code = node.GetInt("output_datatype", 1);
  if (code != static_cast<int64_t>(DataType::kFloat32) &&
      code != static_cast<int64_t>(DataType::kFloat64)) {
    return absl::UnimplementedError(
        absl::StrCat("output_datatype ", code, " is not supported (float or double)"));
  }
  return static_cast<DataType>(code);
}

template <typename F>
absl::Status FillFloat(Tensor* out, DataType type, std::vector<int64_t> shape, F&& value) {
  out->Resize(type, std::move(shape));
  return VisitFloat(type, [&](auto tag) {
    using T = decltype(tag);
    T* y = out->data<T>();
    for (int64_t i = 0; i < out->num_elements(); ++i) y[i] = static_cast<T>(value(i));
    return absl::OkStatus();
  });
}

// A cosine-sum window: a0 - a1 cos(2 pi n / N) + a2 cos(4 pi n / N), with
// N = size when periodic, size - 1 when symmetric.
absl::StatusOr<Kernel> MakeWindow(const NodeView& node, double a0, double a1, double a2) {
  QAT_ASSIGN_OR_RETURN(const DataType type, OutputType(node));
  const bool periodic = node.GetInt("periodic", 1) != 0;
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    QAT_ASSIGN_OR_RETURN(const int64_t size, ReadLength(ctx.input(0), "size"));
    const double n = static_cast<double>(periodic ? size : size - 1);
    return FillFloat(&ctx.output(0), type, {size}, [&](int64_t i) {
      if (n == 0) return 1.0;
      const double x = 2.0 * kPi * static_cast<double>(i) / n;
      return a0 - a1 * std::cos(x) + a2 * std::cos(2.0 * x);
    });
  });
}

template <typename T>
std::complex<double> ComplexAt(const T* x, int64_t i, bool complex_input) {
  return complex_input ? std::complex<double>(x[2 * i], x[2 * i + 1])
                       : std::complex<double>(x[i], 0.0);
}

}  // namespace

absl::StatusOr<Kernel> MakeHannWindow(const NodeView& node) {
  return MakeWindow(node, 0.5, 0.5, 0.0);
}
absl::StatusOr<Kernel> MakeHammingWindow(const NodeView& node) {
  return MakeWindow(node, 25.0 / 46.0, 21.0 / 46.0, 0.0);
}
absl::StatusOr<Kernel> MakeBlackmanWindow(const NodeView& node) {
  return MakeWindow(node, 0.42, 0.5, 0.08);
}

// DFT along `axis` of [batch, n_1, ..., n_k, 1 or 2]; dft_length pads with
// zeros or truncates; onesided keeps bins [0, n/2].
absl::StatusOr<Kernel> MakeDft(const NodeView& node) {
  const int64_t axis_attr = node.GetInt("axis", 1);
  const bool inverse = node.GetInt("inverse", 0) != 0;
  const bool onesided = node.GetInt("onesided", 0) != 0;
  if (inverse && onesided) {
    return absl::UnimplementedError("an inverse onesided DFT is not supported");
  }
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    if (x.rank() < 3 || (x.shape().back() != 1 && x.shape().back() != 2)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the input must be [batch, signal dims..., 1 or 2], got ", ShapeToString(x.shape())));
    }
    QAT_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis(axis_attr, x.rank()));
    if (axis == 0 || axis == x.rank() - 1) {
      return absl::InvalidArgumentError(absl::StrCat("axis ", axis_attr,
                                                     " is the batch or the complex axis"));
    }
    const bool complex_input = x.shape().back() == 2;
    if (onesided && complex_input) {
      return absl::InvalidArgumentError("a onesided DFT needs a real input");
    }
    const int64_t in_len = x.dim(axis);
    int64_t n = in_len;
    if (ctx.has_input(1)) {
      QAT_ASSIGN_OR_RETURN(n, ReadLength(ctx.input(1), "dft_length"));
    }
    const int64_t bins = onesided ? n / 2 + 1 : n;
    std::vector<int64_t> shape = x.shape();
    shape[axis] = bins;
    shape.back() = 2;
    const int64_t outer = Product(x.shape(), 0, axis);
    const int64_t inner = Product(x.shape(), axis + 1, x.rank() - 1);  // without the complex axis
    return VisitFloat(x.dtype(), [&](auto tag) -> absl::Status {
      using T = decltype(tag);
      Tensor& y = ctx.output(0);
      y.Resize(x.dtype(), shape);
      const Dft dft(n, inverse);
      const T* src = x.data<T>();
      T* dst = y.data<T>();
      std::vector<std::complex<double>> line, result;
      for (int64_t o = 0; o < outer; ++o) {
        for (int64_t i = 0; i < inner; ++i) {
          line.assign(static_cast<size_t>(n), {0.0, 0.0});
          for (int64_t j = 0; j < std::min(n, in_len); ++j) {
            line[j] = ComplexAt(src, (o * in_len + j) * inner + i, complex_input);
          }
          dft.Run(line, bins, &result);
          for (int64_t k = 0; k < bins; ++k) {
            T* out = dst + ((o * bins + k) * inner + i) * 2;
            out[0] = static_cast<T>(result[k].real());
            out[1] = static_cast<T>(result[k].imag());
          }
        }
      }
      return absl::OkStatus();
    });
  });
}

// STFT of [batch, signal_length, 1 or 2]: frames of frame_length samples,
// frame_step apart, each times the window (when given), each DFT'd.
absl::StatusOr<Kernel> MakeStft(const NodeView& node) {
  const bool onesided = node.GetInt("onesided", 1) != 0;
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& x = ctx.input(0);
    if (x.rank() != 3 || (x.dim(2) != 1 && x.dim(2) != 2)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the signal must be [batch, length, 1 or 2], got ", ShapeToString(x.shape())));
    }
    const bool complex_input = x.dim(2) == 2;
    if (onesided && complex_input) {
      return absl::InvalidArgumentError("a onesided STFT needs a real signal");
    }
    QAT_ASSIGN_OR_RETURN(const int64_t step, ReadLength(ctx.input(1), "frame_step"));
    const Tensor* window = ctx.has_input(2) ? &ctx.input(2) : nullptr;
    int64_t length = -1;
    if (window != nullptr) {
      if (window->rank() != 1) return absl::InvalidArgumentError("the window must be 1-D");
      QAT_RETURN_IF_ERROR(RequireSameType(x, *window));
      length = window->dim(0);
    }
    if (ctx.has_input(3)) {
      QAT_ASSIGN_OR_RETURN(const int64_t given, ReadLength(ctx.input(3), "frame_length"));
      if (length >= 0 && given != length) {
        return absl::InvalidArgumentError(absl::StrCat(
            "frame_length ", given, " differs from the window's length ", length));
      }
      length = given;
    }
    if (length < 1) {
      return absl::InvalidArgumentError("STFT needs a window or a frame_length");
    }
    const int64_t batch = x.dim(0), signal = x.dim(1);
    if (length > signal) {
      return absl::InvalidArgumentError(absl::StrCat(
          "frames of ", length, " do not fit a signal of ", signal));
    }
    const int64_t frames = (signal - length) / step + 1;
    const int64_t bins = onesided ? length / 2 + 1 : length;
    return VisitFloat(x.dtype(), [&](auto tag) -> absl::Status {
      using T = decltype(tag);
      Tensor& y = ctx.output(0);
      y.Resize(x.dtype(), {batch, frames, bins, 2});
      const Dft dft(length, false);
      const T* src = x.data<T>();
      const T* w = window != nullptr ? window->data<T>() : nullptr;
      std::vector<std::complex<double>> line(static_cast<size_t>(length)), result;
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t f = 0; f < frames; ++f) {
          for (int64_t j = 0; j < length; ++j) {
            const double scale = w != nullptr ? static_cast<double>(w[j]) : 1.0;
            line[j] = ComplexAt(src, b * signal + f * step + j, complex_input) * scale;
          }
          dft.Run(line, bins, &result);
          T* out = y.data<T>() + (b * frames + f) * bins * 2;
          for (int64_t k = 0; k < bins; ++k) {
            out[2 * k] = static_cast<T>(result[k].real());
            out[2 * k + 1] = static_cast<T>(result[k].imag());
          }
        }
      }
      return absl::OkStatus();
    });
  });
}

// MelWeightMatrix: [dft_length / 2 + 1, num_mel_bins] triangular filters,
// computed as ONNX's definition does (mel = 2595 log10(1 + hz / 700), bins
// floored to the DFT's).
absl::StatusOr<Kernel> MakeMelWeightMatrix(const NodeView& node) {
  QAT_ASSIGN_OR_RETURN(const DataType type, OutputType(node));
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 5));
    QAT_ASSIGN_OR_RETURN(const int64_t mel_bins, ReadLength(ctx.input(0), "num_mel_bins"));
    QAT_ASSIGN_OR_RETURN(const int64_t dft_length, ReadLength(ctx.input(1), "dft_length"));
    QAT_ASSIGN_OR_RETURN(const int64_t sample_rate, ReadLength(ctx.input(2), "sample_rate"));
    QAT_ASSIGN_OR_RETURN(const double lower, ReadScalar(ctx.input(3), "lower_edge_hertz"));
    QAT_ASSIGN_OR_RETURN(const double upper, ReadScalar(ctx.input(4), "upper_edge_hertz"));
    if (!(lower >= 0 && lower <= upper && upper <= sample_rate / 2.0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the edges must satisfy 0 <= lower_edge_hertz <= upper_edge_hertz <= sample_rate / 2; "
          "got ", lower, ", ", upper, " and ", sample_rate));
    }
    const int64_t spectrogram_bins = dft_length / 2 + 1;
    auto to_mel = [](double hz) { return 2595.0 * std::log10(1.0 + hz / 700.0); };
    const double low_mel = to_mel(lower), high_mel = to_mel(upper);
    const double mel_step = (high_mel - low_mel) / static_cast<double>(mel_bins + 2);
    std::vector<int64_t> edges(static_cast<size_t>(mel_bins + 2));
    for (int64_t i = 0; i < mel_bins + 2; ++i) {
      const double hz = 700.0 * (std::pow(10.0, (i * mel_step + low_mel) / 2595.0) - 1.0);
      const double bin = std::floor(static_cast<double>(dft_length + 1) * hz / sample_rate);
      edges[i] = std::min<int64_t>(static_cast<int64_t>(bin), spectrogram_bins - 1);
    }
    std::vector<double> w(static_cast<size_t>(spectrogram_bins * mel_bins), 0.0);
    for (int64_t i = 0; i < mel_bins; ++i) {
      const int64_t lo = edges[i], center = edges[i + 1], hi = edges[i + 2];
      if (center == lo) {
        w[center * mel_bins + i] = 1.0;
      } else {
        for (int64_t j = lo; j <= center; ++j) {
          w[j * mel_bins + i] = static_cast<double>(j - lo) / static_cast<double>(center - lo);
        }
      }
      for (int64_t j = center; j < hi; ++j) {
        w[j * mel_bins + i] = static_cast<double>(hi - j) / static_cast<double>(hi - center);
      }
    }
    return FillFloat(&ctx.output(0), type, {spectrogram_bins, mel_bins},
                     [&](int64_t i) { return w[i]; });
  });
}

}  // namespace exec
}  // namespace qat
