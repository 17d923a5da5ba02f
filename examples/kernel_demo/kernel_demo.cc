// A tour of libqat's FakeQuant kernels: what they compute on a few hand-picked
// values (ties, saturation, NaN, Inf), per-channel weights, the
// straight-through and LSQ gradients, and how fast the forward pass runs.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "qat/fake_quant.h"

namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "kernel_demo: %s\n", status.ToString().c_str());
  return 1;
}

}  // namespace

int main() {
  std::printf("libqat FakeQuant kernels (variant: %s)\n\n",
              qat::FakeQuantKernelVariant());

  // Per tensor, uint8 with scale 0.5 and zero point 10.
  const qat::FakeQuantParams params{0.5f, 10.0f, qat::QuantRange::UInt8()};
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x = {0.25f, 0.75f, -0.25f, -1.25f, 1.3f, -5.0f,
                                -6.0f, 200.0f, -inf, inf, std::nanf("")};
  std::vector<float> y(x.size());
  std::unique_ptr<bool[]> mask(new bool[x.size()]);
  absl::Span<bool> mask_span(mask.get(), x.size());
  if (auto s = qat::FakeQuantPerTensor(x, absl::MakeSpan(y), mask_span, params);
      !s.ok()) {
    return Fail(s);
  }
  std::printf("per tensor: scale 0.5, zero point 10, range [0, 255]\n");
  std::printf("  %10s %10s %6s\n", "x", "y", "mask");
  for (size_t i = 0; i < x.size(); ++i) {
    std::printf("  %10g %10g %6d\n", x[i], y[i], mask[i] ? 1 : 0);
  }

  // Straight-through and LSQ gradients for dy = 1.
  const std::vector<float> dy(x.size() - 1, 1.0f);  // leave out the NaN
  std::vector<float> dx(dy.size());
  auto lsq = qat::FakeQuantLsqGradPerTensor(
      absl::MakeConstSpan(x.data(), dy.size()), dy, absl::MakeSpan(dx), params);
  if (!lsq.ok()) return Fail(lsq.status());
  std::printf("\nLSQ with dy = 1 (NaN left out): dscale = %g, dzero_point = %g\n",
              lsq->scale, lsq->zero_point);

  // Per channel: a [2, 3] weight quantized along axis 0, int8 narrow range.
  const std::vector<int64_t> shape = {2, 3};
  const std::vector<float> w = {0.11f, -0.52f, 0.9f, 2.0f, -3.1f, 7.0f};
  const std::vector<float> scales = {0.01f, 0.05f};
  const std::vector<float> zero_points = {0.0f, 0.0f};
  std::vector<float> wq(w.size());
  qat::PerChannelFakeQuantParams pc{scales, zero_points, 0,
                                    qat::QuantRange::Int8Narrow()};
  if (auto s = qat::FakeQuantPerChannel(shape, w, absl::MakeSpan(wq), {}, pc);
      !s.ok()) {
    return Fail(s);
  }
  std::printf("\nper channel (axis 0, scales 0.01 and 0.05, [-127, 127]):\n");
  for (int r = 0; r < 2; ++r) {
    std::printf("  [%g %g %g] -> [%g %g %g]\n", w[3 * r], w[3 * r + 1],
                w[3 * r + 2], wq[3 * r], wq[3 * r + 1], wq[3 * r + 2]);
  }

  // A bad parameter is an error value, never a crash.
  qat::FakeQuantParams bad = params;
  bad.scale = 0.0f;
  std::printf("\nscale 0 -> %s\n",
              qat::FakeQuantPerTensor(x, absl::MakeSpan(y), {}, bad)
                  .ToString()
                  .c_str());

  // Throughput of the forward pass on 2^24 elements, one thread.
  const size_t n = size_t{1} << 24;
  std::vector<float> big(n), out(n);
  std::unique_ptr<bool[]> big_mask(new bool[n]);
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (float& v : big) v = normal(rng);
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    if (auto s = qat::FakeQuantPerTensor(big, absl::MakeSpan(out),
                                         absl::Span<bool>(big_mask.get(), n),
                                         params);
        !s.ok()) {
      return Fail(s);
    }
    const std::chrono::duration<double> dt =
        std::chrono::steady_clock::now() - t0;
    best = std::min(best, dt.count());
  }
  std::printf("\nforward, 2^24 elements, 1 thread: %.2f ms, %.3f ns/element, "
              "%.2f GB/s (9 bytes per element)\n",
              best * 1e3, best * 1e9 / n, 9.0 * n / best / 1e9);
  return 0;
}
