// How the graph stages scale with the node count: quantize (fold constants,
// insert QDQ) and prepare (fuse QDQ into FakeQuant, add the loss, build the
// gradients, write the training folder) on a chain of M Gemm nodes, at
// M = 1k, 4k, 16k and 64k (100k with --max_nodes=100000).
//
// After the usual table it prints, per stage, the growth exponent: the
// log-log slope of time against M between successive sizes and over all of
// them (1 is linear; n log n reads about 1.1 over this range; 2 is
// quadratic).  QuantizePasses is quantize's passes without the final check:
// libqat's own share.  LoadQdq, loading the quantized model (onnx::checker
// and shape inference), is the floor that each stage's result pays once.
// --max_nodes=N drops the sizes above N, for a quick run; --nodes=N1,N2,...
// runs those sizes instead.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <unistd.h>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "benchmark/benchmark.h"
#include "core/model_internal.h"
#include "graph/pass_pipeline.h"
#include "onnx/onnx_pb.h"
#include "passes/fold_constants.h"
#include "passes/insert_qdq.h"
#include "passes/prune_unused_initializers.h"
#include "qat/calibration_table.h"
#include "qat/model.h"
#include "qat/prepare.h"
#include "qat/quantize.h"

namespace qat {
namespace {

constexpr int64_t kWidth = 4;

// x [1, 4] -> Gemm(W_k, B_k) -> ... -> y_M, with tiny seeded weights.
absl::StatusOr<Model> GemmChain(int64_t m) {
  onnx::ModelProto model;
  model.set_ir_version(8);
  model.add_opset_import()->set_version(13);
  onnx::GraphProto* g = model.mutable_graph();
  g->set_name("gemm_chain");
  auto declare = [](onnx::ValueInfoProto* v, const std::string& name) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    t->mutable_shape()->add_dim()->set_dim_value(1);
    t->mutable_shape()->add_dim()->set_dim_value(kWidth);
  };
  declare(g->add_input(), "y0");
  uint32_t seed = 1;
  auto next = [&seed] {
    seed = seed * 1664525u + 1013904223u;
    return static_cast<float>(seed >> 8) / 16777216.0f - 0.5f;
  };
  for (int64_t k = 1; k <= m; ++k) {
    const std::string w = "W" + std::to_string(k), b = "B" + std::to_string(k);
    for (const auto& [name, dims] :
         {std::pair{w, std::vector<int64_t>{kWidth, kWidth}},
          std::pair{b, std::vector<int64_t>{kWidth}}}) {
      onnx::TensorProto* t = g->add_initializer();
      t->set_name(name);
      t->set_data_type(onnx::TensorProto::FLOAT);
      int64_t n = 1;
      for (int64_t d : dims) {
        t->add_dims(d);
        n *= d;
      }
      for (int64_t i = 0; i < n; ++i) t->add_float_data(next());
    }
    onnx::NodeProto* node = g->add_node();
    node->set_op_type("Gemm");
    node->set_name("gemm" + std::to_string(k));
    node->add_input("y" + std::to_string(k - 1));
    node->add_input(w);
    node->add_input(b);
    node->add_output("y" + std::to_string(k));
  }
  declare(g->add_output(), "y" + std::to_string(m));
  return Model::FromBytes(model.SerializeAsString(), "gemm_chain.onnx");
}

absl::StatusOr<CalibrationTable> ChainTable(int64_t m) {
  CalibrationTable table;
  for (int64_t k = 0; k <= m; ++k) {
    absl::StatusOr<CalibrationEntry> e = MakeCalibrationEntry(
        TensorRole::kActivation, QuantType::kUInt8, CalibrationMethod::kMinMax,
        /*symmetric=*/false, /*reduce_range=*/false, std::nullopt, {{-1.0f, 1.0f}});
    if (!e.ok()) return e.status();
    absl::Status s = table.Set("y" + std::to_string(k), *e);
    if (!s.ok()) return s;
  }
  return table;
}

// The chain of `m` Gemm nodes, its table and its quantized form.
struct Chain {
  absl::StatusOr<Model> fp32 = absl::UnknownError("not built");
  absl::StatusOr<CalibrationTable> table = absl::UnknownError("not built");
  absl::StatusOr<Model> qdq = absl::UnknownError("not built");
};
Chain MakeChain(int64_t m, bool quantize, benchmark::State& state) {
  Chain c;
  c.fp32 = GemmChain(m);
  c.table = ChainTable(m);
  if (!c.fp32.ok() || !c.table.ok()) {
    state.SkipWithError("cannot build the chain");
  } else if (quantize) {
    c.qdq = QuantizeModel(*c.fp32, *c.table, {});
    if (!c.qdq.ok()) state.SkipWithError(c.qdq.status().ToString().c_str());
  }
  state.counters["nodes"] = static_cast<double>(m);
  return c;
}

void Quantize(benchmark::State& state) {
  const Chain chain = MakeChain(state.range(0), false, state);
  if (!chain.fp32.ok() || !chain.table.ok()) return;
  for (auto _ : state) {
    absl::StatusOr<Model> q = QuantizeModel(*chain.fp32, *chain.table, {});
    if (!q.ok()) state.SkipWithError(q.status().ToString().c_str());
  }
}

void PrepareFolder(benchmark::State& state) {
  const Chain chain = MakeChain(state.range(0), true, state);
  if (!chain.qdq.ok()) return;
  const Model& qdq = *chain.qdq;
  const std::string dir =
      (std::filesystem::temp_directory_path() / "qat_graph_scaling_benchmark").string();
  for (auto _ : state) {
    absl::StatusOr<PrepareSummary> summary = Prepare(qdq, dir, {});
    if (!summary.ok()) {
      state.SkipWithError(summary.status().ToString().c_str());
      break;
    }
  }
  std::filesystem::remove_all(dir);
}

// Quantize's passes alone (fold constants, insert QDQ, prune), without the
// final check and shape inference: libqat's own share.
void QuantizePasses(benchmark::State& state) {
  const Chain chain = MakeChain(state.range(0), false, state);
  if (!chain.fp32.ok() || !chain.table.ok()) return;
  passes::PassPipelineOptions options;
  options.check_invariants = false;
  passes::PassPipeline pipeline(options);
  pipeline.Add(std::make_unique<passes::FoldConstantsPass>());
  pipeline.Add(std::make_unique<passes::InsertQdqPass>(*chain.table, passes::InsertQdqConfig{}));
  pipeline.Add(std::make_unique<passes::PruneUnusedInitializersPass>());
  for (auto _ : state) {
    state.PauseTiming();
    onnx::ModelProto proto = ModelAccess::Proto(*chain.fp32);
    state.ResumeTiming();
    absl::StatusOr<bool> changed = pipeline.Run(&proto);
    if (!changed.ok()) state.SkipWithError(changed.status().ToString().c_str());
  }
}

// The floor under both: loading the quantized model (parse, onnx::checker,
// shape inference), which every stage's result goes through once.
void LoadQdq(benchmark::State& state) {
  const Chain chain = MakeChain(state.range(0), true, state);
  if (!chain.qdq.ok()) return;
  const std::string bytes = chain.qdq->Serialize();
  for (auto _ : state) {
    absl::StatusOr<Model> loaded = Model::FromBytes(bytes, "qdq.onnx");
    if (!loaded.ok()) state.SkipWithError(loaded.status().ToString().c_str());
  }
}

// Collects each run's time per family while printing as usual.
class SlopeReporter : public benchmark::ConsoleReporter {
 public:
  SlopeReporter() : ConsoleReporter(isatty(1) ? OO_ColorTabular : OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.error_occurred || r.iterations == 0) continue;
      const auto nodes = r.counters.find("nodes");
      if (nodes == r.counters.end()) continue;
      const std::string family = r.benchmark_name().substr(0, r.benchmark_name().find('/'));
      const double unit = benchmark::GetTimeUnitMultiplier(r.time_unit);
      times_[family].push_back(
          {nodes->second.value, r.GetAdjustedRealTime() * unit, r.GetAdjustedCPUTime() * unit});
    }
  }
  // Wall time and CPU time: on a shared machine the CPU time is the steadier.
  void PrintSlopes() const {
    for (const auto& [family, points] : times_) {
      std::printf("\n%s: growth exponent (log-log slope of time against nodes)\n",
                  family.c_str());
      for (size_t i = 1; i < points.size(); ++i) {
        const Point& a = points[i - 1];
        const Point& b = points[i];
        const double span = std::log(b.nodes / a.nodes);
        std::printf("  %6.0f -> %6.0f nodes: wall %7.3f -> %7.3f s (exponent %.2f), "
                    "cpu %7.3f -> %7.3f s (exponent %.2f)\n",
                    a.nodes, b.nodes, a.wall, b.wall, std::log(b.wall / a.wall) / span, a.cpu,
                    b.cpu, std::log(b.cpu / a.cpu) / span);
      }
      if (points.size() < 2) continue;
      std::printf("  overall exponent (least squares): wall %.2f, cpu %.2f\n",
                  Slope(points, &Point::wall), Slope(points, &Point::cpu));
    }
  }

 private:
  struct Point {
    double nodes, wall, cpu;
  };
  static double Slope(const std::vector<Point>& points, double Point::*time) {
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (const Point& p : points) {
      const double x = std::log(p.nodes), y = std::log(p.*time);
      sx += x;
      sy += y;
      sxx += x * x;
      sxy += x * y;
    }
    const double k = static_cast<double>(points.size());
    return (k * sxy - sx * sy) / (k * sxx - sx * sx);
  }
  std::map<std::string, std::vector<Point>> times_;
};

}  // namespace
}  // namespace qat

int main(int argc, char** argv) {
  int64_t max_nodes = 64000;
  std::vector<int64_t> sizes = {1000, 4000, 16000, 64000, 100000};
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--max_nodes=", 12) == 0) {
      max_nodes = std::atoll(argv[i] + 12);
    } else if (std::strncmp(argv[i], "--nodes=", 8) == 0) {
      sizes.clear();
      for (const char* p = argv[i] + 8; *p != '\0';) {
        char* end = nullptr;
        sizes.push_back(std::strtoll(p, &end, 10));
        p = *end == ',' ? end + 1 : end;
        if (end == p && *p != '\0') break;  // not a number
      }
      max_nodes = INT64_MAX;
    } else {
      rest.push_back(argv[i]);
    }
  }
  for (auto* family : {benchmark::RegisterBenchmark("Quantize", qat::Quantize),
                       benchmark::RegisterBenchmark("Prepare", qat::PrepareFolder),
                       benchmark::RegisterBenchmark("QuantizePasses", qat::QuantizePasses),
                       benchmark::RegisterBenchmark("LoadQdq", qat::LoadQdq)}) {
    for (int64_t m : sizes) {
      if (m <= max_nodes) family->Arg(m);
    }
    family->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
  }
  int rest_argc = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  qat::SlopeReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintSlopes();
  return 0;
}
