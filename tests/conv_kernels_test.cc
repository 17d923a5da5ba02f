// The convolution paths chosen by shape (lib/exec/ops/conv.cc: pointwise
// GEMM, depthwise, direct, im2col + GEMM; lib/exec/ops/training_ops.cc:
// ConvTranspose's pointwise and depthwise shortcuts) against plain
// references, bit for bit: odd sizes, padding, strides, dilations, groups,
// batches above one, and 1 and 2 threads.  Every kernel variant's depthwise
// planes (and the SIMD kernel at 16 portable lanes) against
// DepthwiseConvReference and DepthwiseConvTransposeReference,
// and its small-output convolution against SmallOutputConvReference.
// ctest runs this binary again with QAT_KERNEL_VARIANT=scalar.
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "graph_builder.h"
#include "exec/ops/training_ops.h"
#include "kernels/depthwise_conv_simd.h"
#include "kernels/sgemm_variants.h"
#include "qat/executor.h"
#include "qat/model.h"

namespace qat {
namespace {

std::vector<float> Random(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  // Some exact zeros of both signs, so that the sign of a zero sum is tested.
  for (size_t i = 0; i < v.size(); i += 13) v[i] = (i / 13) % 2 == 0 ? 0.0f : -0.0f;
  return v;
}

Tensor RandomTensor(std::vector<int64_t> shape, uint32_t seed) {
  Tensor t(DataType::kFloat32, shape);
  const std::vector<float> v = Random(t.num_elements(), seed);
  std::memcpy(t.raw_data(), v.data(), v.size() * sizeof(float));
  return t;
}

int64_t OutSize(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe) {
  return (in + pb + pe - ((k - 1) * d + 1)) / s + 1;
}

// ---- the depthwise planes of every variant ----------------------------------

// A portable stand-in for an instruction set with AVX-512's 16 lanes, so that
// a machine without AVX-512 still checks the SIMD kernel's logic at that
// width (two 8 x 8 transposes per run of channels, partial runs).
struct Portable16 {
  struct F {
    float v[16];
  };
  static constexpr int kWidth = 16;
  static F Zero() { return F{}; }
  static F Set1(float x) {
    F r;
    for (int i = 0; i < kWidth; ++i) r.v[i] = x;
    return r;
  }
  static F Load(const float* p) {
    F r;
    std::memcpy(r.v, p, sizeof(r.v));
    return r;
  }
  static void Store(float* p, F a) { std::memcpy(p, a.v, sizeof(a.v)); }
  static F Fma(F a, F b, F c) {
    for (int i = 0; i < kWidth; ++i) c.v[i] = std::fma(a.v[i], b.v[i], c.v[i]);
    return c;
  }
  static F Add(F a, F b) {
    for (int i = 0; i < kWidth; ++i) a.v[i] += b.v[i];
    return a;
  }
  static F Mul(F a, F b) {
    for (int i = 0; i < kWidth; ++i) a.v[i] *= b.v[i];
    return a;
  }
  // As x86's max and min: a when a > b (a < b), else b.
  static F Max(F a, F b) {
    for (int i = 0; i < kWidth; ++i) a.v[i] = a.v[i] > b.v[i] ? a.v[i] : b.v[i];
    return a;
  }
  static F Min(F a, F b) {
    for (int i = 0; i < kWidth; ++i) a.v[i] = a.v[i] < b.v[i] ? a.v[i] : b.v[i];
    return a;
  }
  static void Transpose8x8(const float* src, int64_t src_stride, float* dst, int64_t dst_stride) {
    for (int i = 0; i < 8; ++i) {
      for (int j = 0; j < 8; ++j) dst[j * dst_stride + i] = src[i * src_stride + j];
    }
  }
};

struct DepthwiseKernel {
  std::string name;
  void (*forward)(const kernels::DepthwiseConv&);
  void (*transpose)(const kernels::DepthwiseConv&);
};

std::vector<DepthwiseKernel> DepthwiseKernels() {
  std::vector<DepthwiseKernel> all;
  for (const kernels::SgemmKernels* kernel : kernels::SupportedSgemmVariants()) {
    all.push_back({kernel->name, kernel->depthwise_conv, kernel->depthwise_conv_transpose});
  }
  using Portable = kernels::simd::DepthwiseConvSimd<Portable16>;
  all.push_back({"portable16", Portable::Forward, Portable::Transpose});
  return all;
}

TEST(DepthwiseKernelTest, EveryVariantMatchesTheReferenceBitForBit) {
  struct Case {
    int64_t in_h, in_w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
  };
  const Case cases[] = {
      {11, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},   {16, 17, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
      {32, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},   {32, 33, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1},
      {9, 40, 5, 5, 2, 3, 2, 2, 2, 3, 1, 0},    {1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
      {2, 2, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},     {7, 19, 1, 7, 1, 1, 1, 1, 0, 3, 0, 3},
      {8, 8, 7, 7, 1, 1, 1, 1, 3, 3, 3, 3},     {6, 70, 3, 3, 1, 2, 1, 3, 0, 0, 0, 0},
      {12, 12, 3, 3, 1, 1, 1, 1, -1, -1, 0, 0},  // ConvTranspose's output_shape
      // MobileNet's late maps: 4x4 and 2x2, and the stride-2 layers into them.
      {4, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},     {8, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
      {2, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},     {4, 4, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1},
      {5, 3, 3, 3, 1, 1, 3, 2, 3, 2, 3, 2},     {3, 9, 2, 4, 3, 1, 1, 2, -1, 1, 0, -2},
  };
  for (const Case& c : cases) {
    kernels::DepthwiseConv d{};
    d.in_h = c.in_h;
    d.in_w = c.in_w;
    d.kernel_h = c.kh;
    d.kernel_w = c.kw;
    d.stride_h = c.sh;
    d.stride_w = c.sw;
    d.dilation_h = c.dh;
    d.dilation_w = c.dw;
    d.pad_top = c.pt;
    d.pad_left = c.pl;
    d.out_h = OutSize(c.in_h, c.kh, c.sh, c.dh, c.pt, c.pb);
    d.out_w = OutSize(c.in_w, c.kw, c.sw, c.dw, c.pl, c.pr);
    ASSERT_GT(d.out_h, 0);
    ASSERT_GT(d.out_w, 0);
    // A lone plane, runs shorter and longer than a vector, and a full run;
    // one image, and three with a plane between them.
    std::vector<std::pair<int64_t, int64_t>> runs;  // channels, images
    for (int64_t channels : {1, 5, 11, 16, 21}) {
      for (int64_t images : {1, 3}) runs.push_back({channels, images});
    }
    for (const auto& [channels, images] : runs) {
      d.channels = channels;
      d.images = images;
      const int64_t in_plane = c.in_h * c.in_w, out_plane = d.out_h * d.out_w;
      // Image strides of the input and output planes; Transpose reads the
      // output's and writes the input's.
      const int64_t x_stride = (channels + 1) * in_plane, y_stride = (channels + 1) * out_plane;
      auto read_x = [&](const float* x, float* y) {
        d.in = x;
        d.out = y;
        d.in_image_stride = x_stride;
        d.out_image_stride = y_stride;
      };
      auto read_y = [&](const float* g, float* dx) {
        d.in = g;
        d.out = dx;
        d.in_image_stride = y_stride;
        d.out_image_stride = x_stride;
      };
      std::vector<float> x = Random(images * x_stride, 3);
      // A NaN, which Relu maps to +0 and Clip keeps.
      x[channels * in_plane / 2] = std::numeric_limits<float>::quiet_NaN();
      const std::vector<float> g = Random(images * y_stride, 4);
      const std::vector<float> w = Random(channels * c.kh * c.kw, 5);
      std::vector<float> biases(static_cast<size_t>(channels));
      for (int64_t i = 0; i < channels; ++i) biases[i] = i % 2 == 0 ? 0.75f - i : -0.0f;
      d.w = w.data();
      const float* no_bias = nullptr;
      // Forward's bias and activation (Clip's bounds cut both ends).
      using Kind = kernels::ActivationKind;
      d.lo = -0.5f;
      d.hi = 1.25f;
      std::vector<std::pair<const float*, Kind>> finishes;  // bias, activation
      for (const float* bias : {static_cast<const float*>(biases.data()), no_bias}) {
        for (const Kind activation : {Kind::kNone, Kind::kRelu, Kind::kClip}) {
          finishes.push_back({bias, activation});
        }
      }
      for (const auto& [bias, activation] : finishes) {
        d.bias = bias;
        d.activation = activation;
        std::vector<float> forward(g.size(), -7.0f), backward(x.size(), -7.0f);
        read_x(x.data(), forward.data());
        kernels::DepthwiseConvReference(d);
        read_y(g.data(), backward.data());
        kernels::DepthwiseConvTransposeReference(d);
        for (const DepthwiseKernel& kernel : DepthwiseKernels()) {
          std::vector<float> scratch(kernels::DepthwiseScratchFloats(d), 1e30f);
          d.scratch = scratch.data();
          std::vector<float> y(forward.size(), -7.0f), dx(backward.size(), -7.0f);
          read_x(x.data(), y.data());
          kernel.forward(d);
          EXPECT_EQ(std::memcmp(y.data(), forward.data(), y.size() * sizeof(float)), 0)
              << kernel.name << " forward, " << channels << " channels, in " << c.in_h << "x"
              << c.in_w << " kernel " << c.kh << "x" << c.kw << " stride " << c.sh << ","
              << c.sw << " activation " << static_cast<int>(activation) << ", " << images
              << " images";
          read_y(g.data(), dx.data());
          kernel.transpose(d);
          EXPECT_EQ(std::memcmp(dx.data(), backward.data(), dx.size() * sizeof(float)), 0)
              << kernel.name << " transpose, " << channels << " channels, in " << c.in_h
              << "x" << c.in_w << " kernel " << c.kh << "x" << c.kw << " stride " << c.sh
              << "," << c.sw << ", " << images << " images";
        }
      }
    }
  }
}

// ---- the small-output convolution of every variant --------------------------

TEST(SmallOutputConvTest, EveryVariantMatchesTheReferenceBitForBit) {
  struct Case {
    int64_t channels, in_h, in_w, kh, kw, sh, dh, dw, pt, pl, pb, pr;
  };
  const Case cases[] = {
      {32, 32, 32, 32, 32, 1, 1, 1, 1, 1, 1, 1},  // MobileNet's first depthwise layer
      {8, 16, 16, 8, 8, 1, 2, 2, 1, 1, 1, 1},     // a stride-2 layer's (dilation 2)
      {5, 7, 9, 5, 5, 1, 1, 1, 1, 1, 1, 1},       {3, 11, 6, 4, 2, 2, 1, 1, 0, 1, 2, 0},
      {2, 9, 20, 3, 5, 1, 1, 1, 0, 0, 0, 0},      {1, 4, 4, 4, 4, 1, 1, 1, 0, 0, 0, 0},
  };
  std::map<std::string, int> checked;
  for (const Case& c : cases) {
    kernels::SmallOutputConv a{};
    a.channels = c.channels;
    a.in_h = c.in_h;
    a.in_w = c.in_w;
    a.kernel_h = c.kh;
    a.kernel_w = c.kw;
    a.stride_h = c.sh;
    a.dilation_h = c.dh;
    a.dilation_w = c.dw;
    a.pad_top = c.pt;
    a.pad_left = c.pl;
    a.out_h = OutSize(c.in_h, c.kh, c.sh, c.dh, c.pt, c.pb);
    a.out_w = OutSize(c.in_w, c.kw, 1, c.dw, c.pl, c.pr);
    const std::vector<float> x = Random(c.channels * c.in_h * c.in_w, 21);
    const std::vector<float> w = Random(c.channels * c.kh * c.kw, 22);
    a.x = x.data();
    a.w = w.data();
    std::vector<float> ref(a.out_h * a.out_w);
    a.y = ref.data();
    kernels::SmallOutputConvReference(a);
    for (const kernels::SgemmKernels* kernel : kernels::SupportedSgemmVariants()) {
      if (!kernel->small_output_conv_fits(a)) continue;
      ++checked[kernel->name];
      std::vector<float> y(ref.size(), -7.0f);
      a.y = y.data();
      kernel->small_output_conv(a);
      EXPECT_EQ(std::memcmp(y.data(), ref.data(), y.size() * sizeof(float)), 0)
          << kernel->name << " out " << a.out_h << "x" << a.out_w;
    }
  }
  for (const kernels::SgemmKernels* kernel : kernels::SupportedSgemmVariants()) {
    if (kernel->isa != kernels::Isa::kScalar) {
      EXPECT_GE(checked[kernel->name], 4) << kernel->name;
    }
  }
}

// ---- Conv through the executor ------------------------------------------------

struct ConvCase {
  std::vector<int64_t> x, w;  // NCHW and [M, C/group, kh, kw]
  int64_t group;
  std::vector<int64_t> strides, dilations, pads;  // pads: top, left, bottom, right
  bool bias;
  const char* what;
};

// Each output: one fma chain over (channel of the group, ky, kx) from zero,
// padding read as zero, then + bias.
std::vector<float> ConvReference(const ConvCase& c, const std::vector<int64_t>& y_shape,
                                 const Tensor& x, const Tensor& w, const Tensor* b) {
  const int64_t N = c.x[0], C = c.x[1], H = c.x[2], W = c.x[3];
  const int64_t M = c.w[0], cg = c.w[1], kh = c.w[2], kw = c.w[3];
  const int64_t OH = y_shape[2], OW = y_shape[3], mg = M / c.group;
  std::vector<float> y(N * M * OH * OW);
  const float* xd = x.data<float>();
  const float* wd = w.data<float>();
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t m = 0; m < M; ++m) {
      const int64_t g = m / mg;
      for (int64_t oy = 0; oy < OH; ++oy) {
        for (int64_t ox = 0; ox < OW; ++ox) {
          float sum = 0.0f;
          for (int64_t ci = 0; ci < cg; ++ci) {
            for (int64_t ky = 0; ky < kh; ++ky) {
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t iy = oy * c.strides[0] + ky * c.dilations[0] - c.pads[0];
                const int64_t ix = ox * c.strides[1] + kx * c.dilations[1] - c.pads[1];
                const bool inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
                const float v = inside ? xd[((n * C + g * cg + ci) * H + iy) * W + ix] : 0.0f;
                sum = std::fma(wd[((m * cg + ci) * kh + ky) * kw + kx], v, sum);
              }
            }
          }
          if (b != nullptr) sum += b->data<float>()[m];
          y[((n * M + m) * OH + oy) * OW + ox] = sum;
        }
      }
    }
  }
  return y;
}

TEST(ConvPathTest, EveryShapeGivesTheReferenceBits) {
  const ConvCase cases[] = {
      {{3, 16, 9, 9}, {24, 16, 1, 1}, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, true, "pointwise"},
      {{2, 8, 10, 7}, {6, 4, 1, 1}, 2, {1, 1}, {1, 1}, {0, 0, 0, 0}, false, "pointwise, groups"},
      {{5, 32, 4, 4}, {16, 32, 1, 1}, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, true, "1x1, small map"},
      {{2, 8, 9, 9}, {8, 8, 1, 1}, 1, {2, 2}, {1, 1}, {0, 0, 0, 0}, true, "1x1, stride 2"},
      {{3, 12, 11, 13}, {12, 1, 3, 3}, 12, {1, 1}, {1, 1}, {1, 1, 1, 1}, true, "depthwise"},
      {{2, 8, 16, 17}, {8, 1, 3, 3}, 8, {2, 2}, {1, 1}, {1, 1, 1, 1}, false, "depthwise s2"},
      {{2, 6, 15, 20}, {6, 1, 5, 5}, 6, {2, 3}, {2, 1}, {2, 0, 1, 3}, true, "depthwise dilated"},
      {{2, 4, 7, 7}, {8, 1, 3, 3}, 4, {1, 1}, {1, 1}, {1, 1, 1, 1}, true, "depth multiplier 2"},
      {{4, 64, 8, 8}, {64, 64, 3, 3}, 1, {1, 1}, {1, 1}, {1, 1, 1, 1}, true, "many channels"},
      {{3, 48, 3, 5}, {72, 48, 3, 3}, 1, {1, 1}, {1, 1}, {1, 1, 1, 1}, false, "tiny map"},
      {{2, 6, 14, 14}, {16, 6, 5, 5}, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, true, "LeNet-5 (direct)"},
      {{2, 5, 13, 11}, {40, 5, 3, 3}, 1, {2, 2}, {2, 2}, {1, 1, 1, 1}, true, "strided dilated"},
      {{2, 8, 7, 7}, {12, 4, 3, 3}, 2, {1, 1}, {1, 1}, {1, 1, 1, 1}, false, "groups"},
      {{16, 8, 10, 10}, {40, 8, 8, 8}, 1, {1, 1}, {1, 1}, {1, 1, 1, 1}, false, "weight grad"},
      {{1, 24, 12, 12}, {4, 6, 10, 10}, 4, {1, 1}, {1, 1}, {1, 1, 1, 1}, true, "dw weight grad"},
      {{1, 12, 16, 16}, {3, 4, 8, 8}, 3, {1, 1}, {2, 2}, {1, 1, 1, 1}, false, "dw s2 w-grad"},
      {{2, 12, 9, 9}, {4, 3, 7, 7}, 4, {1, 1}, {1, 1}, {1, 1, 1, 1}, true, "small output"},
      {{3, 3, 32, 32}, {64, 3, 7, 7}, 1, {2, 2}, {1, 1}, {3, 3, 3, 3}, true, "ResNet stem"},
      {{40, 32, 8, 8}, {24, 32, 8, 8}, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, false, "1x1 w-grad"},
      {{6, 20, 1, 1}, {12, 20, 1, 1}, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, true, "1x1 map"},
      {{5, 7, 3, 5}, {9, 7, 3, 5}, 1, {2, 2}, {1, 1}, {0, 0, 1, 1}, true, "whole window"},
      {{2, 16, 4, 4}, {48, 16, 3, 3}, 1, {1, 1}, {1, 1}, {1, 1, 1, 1}, true, "4x4 map"},
      {{3, 8, 3, 2}, {40, 8, 3, 3}, 1, {2, 1}, {1, 1}, {1, 0, 1, 1}, false, "short rows"},
      {{2, 6, 9, 7}, {36, 6, 3, 3}, 1, {2, 2}, {2, 1}, {2, 1, 0, 1}, true, "short strided"},
  };
  for (const ConvCase& c : cases) {
    const int64_t OH = OutSize(c.x[2], c.w[2], c.strides[0], c.dilations[0], c.pads[0], c.pads[2]);
    const int64_t OW = OutSize(c.x[3], c.w[3], c.strides[1], c.dilations[1], c.pads[1], c.pads[3]);
    const std::vector<int64_t> y_shape = {c.x[0], c.w[0], OH, OW};
    const Tensor x = RandomTensor(c.x, 7), w = RandomTensor(c.w, 8);
    const Tensor b = RandomTensor({c.w[0]}, 9);
    GraphBuilder g;
    g.Input("x", kFloat, c.x).Output("y", kFloat, y_shape).Initializer("w", w);
    std::vector<std::string> inputs = {"x", "w"};
    if (c.bias) {
      g.Initializer("b", b);
      inputs.push_back("b");
    }
    auto& node = g.Node("Conv", inputs, {"y"});
    SetInt(node, "group", c.group);
    SetInts(node, "strides", c.strides);
    SetInts(node, "dilations", c.dilations);
    SetInts(node, "pads", c.pads);
    const std::vector<float> want = ConvReference(c, y_shape, x, w, c.bias ? &b : nullptr);
    for (int threads : {1, 2}) {
      ExecutorOptions options;
      options.num_threads = threads;
      auto model = g.Build();
      ASSERT_TRUE(model.ok()) << model.status();
      auto executor = Executor::Create(*model, options);
      ASSERT_TRUE(executor.ok()) << executor.status();
      auto out = (*executor)->Run({{"x", x}});
      ASSERT_TRUE(out.ok()) << c.what << ": " << out.status();
      const Tensor& y = out->at("y");
      ASSERT_EQ(y.shape(), y_shape) << c.what;
      EXPECT_EQ(std::memcmp(y.raw_data(), want.data(), want.size() * sizeof(float)), 0)
          << c.what << " on " << threads << " threads with "
          << kernels::SelectedSgemmKernels().name;
    }
  }
}

// ---- ConvTranspose's shortcuts ----------------------------------------------

// ConvTranspose's pointwise and depthwise shortcuts give the bits of the
// general GEMM + col2im path (exec::ConvTransposeGemm).
TEST(ConvPathTest, ConvTransposeShortcutsGiveTheGemmBits) {
  struct Case {
    std::vector<int64_t> x, w;  // [N, C_in, h, w] and [C_in, C_out / group, kh, kw]
    int64_t group;
    std::vector<int64_t> strides, dilations, pads, output_padding;
    bool bias;
    const char* what;
  };
  const Case cases[] = {
      {{3, 24, 9, 9}, {24, 16, 1, 1}, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, {0, 0}, true, "pointwise"},
      {{2, 8, 5, 7}, {8, 3, 1, 1}, 2, {1, 1}, {1, 1}, {0, 0, 0, 0}, {0, 0}, false, "pw groups"},
      {{2, 8, 8, 9}, {8, 1, 3, 3}, 8, {1, 1}, {1, 1}, {1, 1, 1, 1}, {0, 0}, true, "depthwise"},
      {{3, 6, 8, 8}, {6, 1, 3, 3}, 6, {2, 2}, {1, 1}, {1, 1, 1, 1}, {1, 1}, false, "dw s2"},
      {{2, 5, 6, 11}, {5, 1, 5, 3}, 5, {2, 3}, {2, 1}, {2, 0, 1, 1}, {1, 0}, true, "dw dilated"},
  };
  for (const Case& c : cases) {
    exec::ConvTransposeAttrs attrs;
    attrs.group = c.group;
    attrs.window.strides = c.strides;
    attrs.window.dilations = c.dilations;
    attrs.window.pads = c.pads;
    attrs.output_padding = c.output_padding;
    auto shape = exec::ComputeConvTransposeShape(attrs, c.x, c.w);
    ASSERT_TRUE(shape.ok()) << shape.status();
    const std::vector<int64_t> y_shape = shape->OutputShape();
    const Tensor x = RandomTensor(c.x, 17), w = RandomTensor(c.w, 18);
    const Tensor b = RandomTensor({y_shape[1]}, 19);
    Tensor want(DataType::kFloat32, y_shape), scratch;
    exec::ConvTransposeGemm<float>(nullptr, *shape, x.data<float>(), w.data<float>(),
                                   c.bias ? b.data<float>() : nullptr, want.data<float>(),
                                   scratch);
    GraphBuilder g;
    g.Input("x", kFloat, c.x).Output("y", kFloat, y_shape).Initializer("w", w);
    std::vector<std::string> inputs = {"x", "w"};
    if (c.bias) {
      g.Initializer("b", b);
      inputs.push_back("b");
    }
    auto& node = g.Node("ConvTranspose", inputs, {"y"});
    SetInt(node, "group", c.group);
    SetInts(node, "strides", c.strides);
    SetInts(node, "dilations", c.dilations);
    SetInts(node, "pads", c.pads);
    SetInts(node, "output_padding", c.output_padding);
    for (int threads : {1, 2}) {
      ExecutorOptions options;
      options.num_threads = threads;
      auto model = g.Build();
      ASSERT_TRUE(model.ok()) << model.status();
      auto executor = Executor::Create(*model, options);
      ASSERT_TRUE(executor.ok()) << executor.status();
      auto out = (*executor)->Run({{"x", x}});
      ASSERT_TRUE(out.ok()) << c.what << ": " << out.status();
      const Tensor& y = out->at("y");
      ASSERT_EQ(y.shape(), y_shape) << c.what;
      EXPECT_EQ(std::memcmp(y.raw_data(), want.raw_data(), want.num_elements() * sizeof(float)),
                0)
          << c.what << " on " << threads << " threads with "
          << kernels::SelectedSgemmKernels().name;
    }
  }
}

}  // namespace
}  // namespace qat
