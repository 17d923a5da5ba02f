// Resize's kernel (lib/exec/ops/resize.cc, run through the executor on one
// thread) against a naive loop that computes every output element's source
// coordinates and taps on its own, for a 2x upsampling of [8, 64, 32, 32]:
// nearest (asymmetric, floor: PyTorch's export) and linear (half_pixel).
// Counters: output elements per second.
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "core/onnx_tensor.h"
#include "onnx/onnx_pb.h"
#include "qat/executor.h"
#include "qat/model.h"
#include "qat/tensor.h"

namespace qat {
namespace {

constexpr int64_t kN = 8, kC = 64, kH = 32, kW = 32, kScale = 2;

Tensor Input() {
  Tensor x(DataType::kFloat32, {kN, kC, kH, kW});
  for (int64_t i = 0; i < x.num_elements(); ++i) x.data<float>()[i] = static_cast<float>(i % 97);
  return x;
}

std::unique_ptr<Executor> MakeResize(bool linear) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  onnx::GraphProto* g = m.mutable_graph();
  g->set_name("resize");
  const float s = static_cast<float>(kScale);
  *g->add_initializer() =
      TensorToProto(Tensor::FromValues<float>({4}, std::vector<float>{1, 1, s, s}), "scales");
  onnx::NodeProto* node = g->add_node();
  node->set_op_type("Resize");
  node->add_input("x");
  node->add_input("");
  node->add_input("scales");
  node->add_output("y");
  auto attr = [&](const char* name, const char* value) {
    onnx::AttributeProto* a = node->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(value);
  };
  attr("mode", linear ? "linear" : "nearest");
  if (!linear) {
    attr("coordinate_transformation_mode", "asymmetric");
    attr("nearest_mode", "floor");
  }
  for (const char* name : {"x", "y"}) {
    onnx::ValueInfoProto* v = name[0] == 'x' ? g->add_input() : g->add_output();
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    for (int64_t d : {kN, kC, kH * (name[0] == 'x' ? 1 : kScale), kW * (name[0] == 'x' ? 1 : kScale)}) {
      t->mutable_shape()->add_dim()->set_dim_value(d);
    }
  }
  auto model = Model::FromBytes(m.SerializeAsString(), "resize.onnx");
  if (!model.ok()) return nullptr;
  ExecutorOptions options;
  options.num_threads = 1;
  auto executor = Executor::Create(*model, options);
  return executor.ok() ? std::move(*executor) : nullptr;
}

void BM_ResizeKernel(benchmark::State& state) {
  const bool linear = state.range(0) != 0;
  std::unique_ptr<Executor> executor = MakeResize(linear);
  if (executor == nullptr) {
    state.SkipWithError("could not build the Resize model");
    return;
  }
  const Tensor x = Input();
  for (auto _ : state) {
    auto out = executor->Run({{"x", x}});
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations() * kN * kC * kH * kW * kScale * kScale);
  state.SetLabel(linear ? "linear" : "nearest");
}

// Per output element: its source coordinates, its taps, their weights.
void BM_ResizeNaive(benchmark::State& state) {
  const bool linear = state.range(0) != 0;
  const Tensor x = Input();
  const int64_t ho = kH * kScale, wo = kW * kScale;
  std::vector<float> y(kN * kC * ho * wo);
  const float* px = x.data<float>();
  for (auto _ : state) {
    for (int64_t p = 0; p < kN * kC; ++p) {
      const float* plane = px + p * kH * kW;
      for (int64_t oh = 0; oh < ho; ++oh) {
        for (int64_t ow = 0; ow < wo; ++ow) {
          float v;
          if (!linear) {
            const int64_t ih = std::min<int64_t>(kH - 1, static_cast<int64_t>(std::floor(oh / double(kScale))));
            const int64_t iw = std::min<int64_t>(kW - 1, static_cast<int64_t>(std::floor(ow / double(kScale))));
            v = plane[ih * kW + iw];
          } else {
            const double sy = std::clamp((oh + 0.5) / kScale - 0.5, 0.0, double(kH - 1));
            const double sx = std::clamp((ow + 0.5) / kScale - 0.5, 0.0, double(kW - 1));
            const int64_t y0 = static_cast<int64_t>(sy), x0 = static_cast<int64_t>(sx);
            const int64_t y1 = std::min(y0 + 1, kH - 1), x1 = std::min(x0 + 1, kW - 1);
            const double ly = sy - y0, lx = sx - x0;
            v = static_cast<float>((1 - ly) * ((1 - lx) * plane[y0 * kW + x0] + lx * plane[y0 * kW + x1]) +
                                   ly * ((1 - lx) * plane[y1 * kW + x0] + lx * plane[y1 * kW + x1]));
          }
          y[(p * ho + oh) * wo + ow] = v;
        }
      }
    }
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * kN * kC * ho * wo);
  state.SetLabel(linear ? "linear" : "nearest");
}

BENCHMARK(BM_ResizeKernel)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ResizeNaive)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace qat

BENCHMARK_MAIN();
