// The sensitivity stage (qat/sensitivity.h): its layers are quantize's
// nodes, each measurement is the model quantize builds from the overrides
// (re-built here by hand and evaluated independently), and the proposal's
// table, quantized again, meets the target it reports.
#include "qat/sensitivity.h"

#include <set>
#include <string>

#include "gtest/gtest.h"
#include "qat/model_zoo.h"
#include "synthetic_data.h"

namespace qat {
namespace {

Model DeepBlobsMlp() {
  MlpSpec spec;
  spec.inputs = 8;
  spec.hidden = {16, 16};
  spec.outputs = 3;
  spec.seed = 5;
  return *MakeMlp(spec);
}

std::set<std::string> Names(const std::vector<QuantizableNode>& nodes) {
  std::set<std::string> names;
  for (const auto& n : nodes) names.insert(n.name);
  return names;
}

double RelativeL2(const Model& quantized, const Model& fp32, const Dataset& data) {
  auto m = EvaluateOutputs(quantized, data, &fp32);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? m->outputs[0].relative_l2 : -1.0;
}

TEST(QuantizableNodesTest, SelectionAndKeepFloat) {
  const Model model = DeepBlobsMlp();
  auto all = QuantizableNodes(model);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 3u);
  for (const auto& n : *all) {
    EXPECT_EQ(n.op_type, "Gemm");
    EXPECT_EQ(n.weights.size(), 1u) << n.name;       // B; C stays float
    EXPECT_EQ(n.activations.size(), 2u) << n.name;   // A and Y
  }
  QuantizeOptions options;
  options.node_overrides[(*all)[1].name].keep_float = true;
  options.exclude_nodes = {(*all)[0].name};
  auto some = QuantizableNodes(model, options);
  ASSERT_TRUE(some.ok()) << some.status();
  EXPECT_EQ(Names(*some), std::set<std::string>{(*all)[2].name});
  options.exclude_nodes = {"no_such_node"};
  EXPECT_FALSE(QuantizableNodes(model, options).ok());
}

TEST(SensitivityTest, MeasurementsAreQuantizesModels) {
  const Model model = DeepBlobsMlp();
  const Dataset data = Blobs(96, 1);
  SensitivityOptions options;
  options.quantize.weight_bits = 2;
  options.quantize.per_channel = true;
  options.metric = SensitivityMetric::kRelativeL2;
  options.target_drop = 0.02;
  auto report = AnalyzeSensitivity(model, data, data, options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->metric, "relative_l2");
  const std::vector<QuantizableNode> nodes = *QuantizableNodes(model);
  ASSERT_EQ(report->layers.size(), nodes.size());

  // The same models by hand: the calibrate stage at W2A8, overrides in the
  // table, the quantize stage, an independent evaluation.
  CalibrateOptions co;
  co.weight_bits = 2;
  co.per_channel_weights = true;
  const CalibrationTable table = *Calibrate(model, data, co);
  QuantizeOptions qo = options.quantize;
  const double all = RelativeL2(*QuantizeModel(model, table, qo), model, data);
  EXPECT_DOUBLE_EQ(report->all_quantized.drop, all);
  std::set<std::string> seen;
  for (const LayerSensitivity& l : report->layers) {
    seen.insert(l.node);
    QuantizeOptions alone = qo, all_but = qo;
    for (const auto& n : nodes) {
      if (n.name != l.node) alone.node_overrides[n.name].keep_float = true;
    }
    all_but.node_overrides[l.node].keep_float = true;
    EXPECT_DOUBLE_EQ(l.alone.drop, RelativeL2(*QuantizeModel(model, table, alone), model, data))
        << l.node;
    ASSERT_TRUE(l.has_all_but);
    EXPECT_DOUBLE_EQ(l.all_but.drop,
                     RelativeL2(*QuantizeModel(model, table, all_but), model, data))
        << l.node;
    EXPECT_DOUBLE_EQ(l.recovery, all - l.all_but.drop);
  }
  EXPECT_EQ(seen, Names(nodes));
  for (size_t i = 1; i < report->layers.size(); ++i) {
    EXPECT_GE(report->layers[i - 1].recovery, report->layers[i].recovery);
  }

  // The proposal, quantized again from its table alone, meets the target.
  ASSERT_TRUE(report->proposal.has_value());
  const MixedPrecisionProposal& p = *report->proposal;
  EXPECT_GT(all, 0.02) << "the target should need a proposal";
  EXPECT_TRUE(p.meets_target);
  EXPECT_GE(p.high_precision_layers, 1);
  EXPECT_EQ(p.table.node_overrides().size(), nodes.size());
  const double again =
      RelativeL2(*QuantizeModel(model, p.table, options.quantize), model, data);
  EXPECT_DOUBLE_EQ(again, p.measured.drop);
  EXPECT_LE(again, 0.02);
  const std::string json = report->ToJson();
  for (const auto& n : nodes) EXPECT_NE(json.find("\"" + n.name + "\""), std::string::npos);
  EXPECT_NE(json.find("\"proposal\""), std::string::npos);
}

TEST(SensitivityTest, AccuracyWithLabels) {
  const Model model = BlobsMlp();
  const Dataset data = Blobs(60, 2);
  SensitivityOptions options;
  options.quantize.weight_bits = 2;
  options.quantize.activation_bits = 2;
  options.measure_all_but = false;
  auto report = AnalyzeSensitivity(model, data, data, options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->metric, "accuracy");
  EXPECT_EQ(report->examples, 60);
  const EvalReport fp32 = *Evaluate(model, data);
  EXPECT_DOUBLE_EQ(report->fp32.metric, 100.0 * fp32.accuracy);
  for (const auto& l : report->layers) {
    EXPECT_FALSE(l.has_all_but);
    EXPECT_DOUBLE_EQ(l.alone.drop, report->fp32.metric - l.alone.metric);
  }
  EXPECT_FALSE(report->proposal.has_value());
}

TEST(SensitivityTest, Errors) {
  const Model model = BlobsMlp();
  const Dataset data = Blobs(30, 3);
  SensitivityOptions options;
  options.target_drop = -1.0;
  EXPECT_EQ(AnalyzeSensitivity(model, data, data, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.target_drop.reset();
  options.quantize.op_types = {"Conv"};
  auto none = AnalyzeSensitivity(model, data, data, options);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(none.status().message().find("no node"), std::string::npos) << none.status();
  options.quantize.op_types = {"Gemm"};
  Tensor x(DataType::kFloat32, {4, 8});
  const Dataset unlabelled = *Dataset::FromInputs({{"input", x}}, std::nullopt);
  options.metric = SensitivityMetric::kAccuracy;
  auto no_labels = AnalyzeSensitivity(model, data, unlabelled, options);
  EXPECT_EQ(no_labels.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(no_labels.status().message().find("labels"), std::string::npos);
  EXPECT_FALSE(ParseSensitivityMetric("loss").ok());
  EXPECT_EQ(*ParseSensitivityMetric("relative-l2"), SensitivityMetric::kRelativeL2);
}

}  // namespace
}  // namespace qat
