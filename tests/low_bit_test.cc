// Issue 15's bit widths from 2 to 8: the ranges, the QDQ pass's Clip bounds,
// the FakeQuant ranges fusion reads back, calibration at low bits, LSQ's
// gradient scale per width, per-node overrides (options and table), and
// the errors for widths out of range.
#include <cmath>
#include <map>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "absl/strings/str_cat.h"
#include "core/model_internal.h"
#include "qat/calibrate.h"
#include "qat/calibration_table.h"
#include "qat/executor.h"
#include "qat/model_zoo.h"
#include "qat/qdq_conversion.h"
#include "qat/quant_params.h"
#include "qat/quantize.h"
#include "qat/training_graph.h"
#include "synthetic_data.h"

namespace qat {
namespace {

using ::testing::HasSubstr;

Model SmallMlp() {
  MlpSpec spec;
  spec.inputs = 8;  // Blobs' features
  spec.hidden = {16};
  spec.outputs = 3;
  return *MakeMlp(spec);
}

const onnx::GraphProto& GraphOf(const Model& m) { return ModelAccess::Proto(m).graph(); }

std::vector<std::string> GemmNames(const Model& m) {
  std::vector<std::string> names;
  for (const auto& n : GraphOf(m).node()) {
    if (n.op_type() == "Gemm") names.push_back(n.name());
  }
  return names;
}

// The integer value of a one-element int8/uint8 initializer.
int32_t ScalarInt(const Model& m, const std::string& name) {
  for (const auto& t : GraphOf(m).initializer()) {
    if (t.name() != name) continue;
    const char c = t.raw_data().at(0);
    return t.data_type() == onnx::TensorProto::INT8 ? static_cast<int8_t>(c)
                                                    : static_cast<uint8_t>(c);
  }
  ADD_FAILURE() << "no initializer " << name;
  return 0;
}

// Clip bounds by the name of the Clip's input (the QuantizeLinear output).
std::map<std::string, QuantRange> ClipBounds(const Model& m) {
  std::map<std::string, QuantRange> out;
  for (const auto& n : GraphOf(m).node()) {
    if (n.op_type() != "Clip") continue;
    out[n.input(0)] = {ScalarInt(m, n.input(1)), ScalarInt(m, n.input(2))};
  }
  return out;
}

// Calibrated and quantized (per-channel weights) at the given widths.
absl::StatusOr<Model> CalibrateAndQuantize(const Model& model, const Dataset& data, int wbits,
                                           int abits, QuantType activation_type) {
  CalibrateOptions co;
  co.activation_type = activation_type;
  co.activation_bits = abits;
  co.weight_bits = wbits;
  auto table = Calibrate(model, data, co);
  if (!table.ok()) return table.status();
  QuantizeOptions qo;
  qo.per_channel = true;
  qo.weight_bits = wbits;
  qo.activation_bits = abits;
  qo.activation_type = activation_type;
  return QuantizeModel(model, *table, qo);
}

TEST(QuantRangeForBitsTest, SignedUnsignedNarrowFull) {
  struct Case {
    bool is_signed;
    int bits;
    QuantRangeMode mode;
    QuantRange want;
  };
  const Case cases[] = {
      {true, 2, QuantRangeMode::kAuto, {-2, 1}},     {true, 2, QuantRangeMode::kNarrow, {-1, 1}},
      {false, 2, QuantRangeMode::kFull, {0, 3}},     {false, 2, QuantRangeMode::kNarrow, {0, 2}},
      {true, 3, QuantRangeMode::kFull, {-4, 3}},     {true, 3, QuantRangeMode::kNarrow, {-3, 3}},
      {false, 3, QuantRangeMode::kAuto, {0, 7}},     {true, 5, QuantRangeMode::kAuto, {-16, 15}},
      {false, 5, QuantRangeMode::kNarrow, {0, 30}},  {true, 8, QuantRangeMode::kFull, {-128, 127}},
      {true, 8, QuantRangeMode::kNarrow, {-127, 127}}};
  for (const Case& c : cases) {
    EXPECT_EQ(QuantRangeForBits(c.is_signed, c.bits, /*symmetric=*/true, false, c.mode), c.want)
        << c.bits << " bits, " << QuantRangeModeName(c.mode);
  }
  // kAuto at 4 and 8 bits is QuantRangeFor, exactly.
  for (QuantType t : {QuantType::kInt8, QuantType::kUInt8, QuantType::kInt4, QuantType::kUInt4}) {
    for (bool sym : {false, true}) {
      for (bool reduce : {false, true}) {
        EXPECT_EQ(QuantRangeForBits(QuantTypeRange(t).quant_min < 0, QuantTypeBits(t), sym, reduce),
                  QuantRangeFor(t, sym, reduce))
            << QuantTypeName(t);
      }
    }
  }
}

// Weights at 2, 3 and 5 bits, activations at 3 (unsigned and signed): every
// grid is Q -> Clip -> DQ with the range's bounds, and fusion gives
// FakeQuant nodes with the same quant_min and quant_max.
TEST(LowBitQuantizeTest, ClipBoundsAndFakeQuantRanges) {
  const Model mlp = SmallMlp();
  const Dataset data = Blobs(64, 1);
  for (int wbits : {2, 3, 5}) {
    for (QuantType act : {QuantType::kUInt8, QuantType::kInt8}) {
      SCOPED_TRACE(testing::Message() << "W" << wbits << " " << QuantTypeName(act));
      auto q = CalibrateAndQuantize(mlp, data, wbits, 3, act);
      ASSERT_TRUE(q.ok()) << q.status();
      const QuantRange wr = QuantRangeForBits(true, wbits, true, false);
      const QuantRange ar = act == QuantType::kInt8 ? QuantRange{-4, 3} : QuantRange{0, 7};
      const std::map<std::string, QuantRange> clips = ClipBounds(*q);
      int weights = 0, activations = 0;
      for (const auto& [input, range] : clips) {
        const bool weight = input.find("weight") != std::string::npos;
        EXPECT_EQ(range, weight ? wr : ar) << input;
        (weight ? weights : activations)++;
      }
      EXPECT_EQ(weights, 2);
      EXPECT_EQ(activations, 4);  // input, fc1 out, relu out, fc2 out
      auto fused = FuseQdqToFakeQuant(*q);
      ASSERT_TRUE(fused.ok()) << fused.status();
      int fake_quants = 0;
      for (const auto& n : GraphOf(*fused).node()) {
        if (n.op_type() != "FakeQuant") continue;
        ++fake_quants;
        QuantRange r;
        for (const auto& a : n.attribute()) {
          if (a.name() == "quant_min") r.quant_min = static_cast<int32_t>(a.i());
          if (a.name() == "quant_max") r.quant_max = static_cast<int32_t>(a.i());
        }
        EXPECT_EQ(r, n.domain() == "ai.libqat" ? wr : ar) << n.name();
      }
      EXPECT_EQ(fake_quants, 6);
      // The QDQ model still classifies like fp32 on most samples.
      auto exec = Executor::Create(*q, {});
      ASSERT_TRUE(exec.ok()) << exec.status();
      EXPECT_TRUE((*exec)->Run({{q->inputs()[0].name, data.features()}}).ok());
    }
  }
}

// At 8 bits and at 4-bit weights the model is what it always was: 8-bit
// weights clipped to ONNX Runtime's [-127, 127], activations not clipped.
TEST(LowBitQuantizeTest, EightBitsUnchanged) {
  const Model mlp = SmallMlp();
  const Dataset data = Blobs(64, 1);
  auto table = Calibrate(mlp, data, {});
  ASSERT_TRUE(table.ok());
  auto q = QuantizeModel(mlp, *table, {});
  ASSERT_TRUE(q.ok()) << q.status();
  for (const auto& [input, range] : ClipBounds(*q)) {
    EXPECT_EQ(range, QuantRange::Int8Narrow()) << input;
    EXPECT_THAT(input, HasSubstr("weight"));
  }
  EXPECT_EQ(ClipBounds(*q).size(), 2u);
  QuantizeOptions w4;
  w4.weight_bits = 4;
  auto q4 = QuantizeModel(mlp, *table, w4);
  ASSERT_TRUE(q4.ok());
  for (const auto& [input, range] : ClipBounds(*q4)) EXPECT_EQ(range, QuantRange::Int4()) << input;
}

// A heavy-tailed activation: at 3 bits the MSE search clips much tighter
// than minmax, and tighter than its own 8-bit answer.
TEST(LowBitCalibrationTest, MseAtThreeBitsClipsTighter) {
  MlpSpec spec;
  spec.inputs = 4;
  spec.hidden = {4};
  spec.outputs = 2;
  const Model model = *MakeMlp(spec);
  std::mt19937 rng(7);
  std::student_t_distribution<float> heavy(2.0f);
  Tensor x(DataType::kFloat32, {2000, 4});
  for (float& v : x.values<float>()) v = heavy(rng);
  Tensor y(DataType::kInt64, {2000});
  const Dataset data = *Dataset::Create(std::move(x), std::move(y));
  auto input_rmax = [&](CalibrationMethod method, int bits) {
    CalibrateOptions co;
    co.method = method;
    co.activation_bits = bits;
    co.symmetric_activations = true;
    co.activation_type = QuantType::kInt8;
    auto table = Calibrate(model, data, co);
    EXPECT_TRUE(table.ok()) << table.status();
    const CalibrationEntry* e = table->Find(model.inputs()[0].name);
    EXPECT_NE(e, nullptr);
    EXPECT_EQ(e->bits(), bits);
    return e->rmax[0];
  };
  const float minmax = input_rmax(CalibrationMethod::kMinMax, 3);
  const float mse3 = input_rmax(CalibrationMethod::kMse, 3);
  const float mse8 = input_rmax(CalibrationMethod::kMse, 8);
  const float entropy3 = input_rmax(CalibrationMethod::kEntropy, 3);
  const float entropy8 = input_rmax(CalibrationMethod::kEntropy, 8);
  EXPECT_LT(mse3, 0.5f * minmax);
  EXPECT_LT(mse3, mse8);
  EXPECT_LT(entropy3, entropy8);
  // 2-bit weights take the MSE clip whatever the method.
  CalibrateOptions co;
  co.weight_bits = 2;
  auto table = Calibrate(model, data, co);
  ASSERT_TRUE(table.ok());
  for (const auto& [name, e] : table->entries()) {
    if (e.role != TensorRole::kWeight) continue;
    EXPECT_EQ(e.method, CalibrationMethod::kMse) << name;
    EXPECT_EQ(e.quant_range(), (QuantRange{-2, 1})) << name;
  }
}

// LSQ: g = 1 / sqrt(N * Qp) with Qp = quant_max, the largest positive level
// (2^(b-1) - 1 for signed weights, 2^b - 1 for unsigned activations), at
// every width.
TEST(LowBitLsqTest, GradScaleFollowsThePaperPerWidth) {
  const Model mlp = SmallMlp();  // 8 -> 16 -> 3
  const Dataset data = Blobs(64, 1);
  for (int bits : {2, 3, 5, 8}) {
    SCOPED_TRACE(testing::Message() << bits << " bits");
    auto q = CalibrateAndQuantize(mlp, data, bits, bits, QuantType::kUInt8);
    ASSERT_TRUE(q.ok()) << q.status();
    auto fused = FuseQdqToFakeQuant(*q);
    ASSERT_TRUE(fused.ok()) << fused.status();
    TrainingGraphOptions to;
    to.learn_quant_params = true;
    auto models = BuildTrainingModels(*fused, to);
    ASSERT_TRUE(models.ok()) << models.status();
    const int64_t qp_weight = bits == 8 ? 127 : (1 << (bits - 1)) - 1;
    const int64_t qp_act = bits == 8 ? 255 : (1 << bits) - 1;
    int checked = 0;
    for (const auto& n : GraphOf(models->training).node()) {
      if (n.op_type() != "FakeQuantLsqGrad") continue;
      int64_t qmax = -1;
      float g = -1;
      for (const auto& a : n.attribute()) {
        if (a.name() == "quant_max") qmax = a.i();
        if (a.name() == "grad_scale") g = a.f();
      }
      const bool weight = n.input(0).find("weight") != std::string::npos;
      EXPECT_EQ(qmax, weight ? qp_weight : qp_act) << n.input(0);
      // N: a weight's elements per output channel (fc1 8, fc2 16), an
      // activation's features per sample.
      int64_t n_elems = 0;
      if (n.input(0).find("fc1.weight") != std::string::npos) n_elems = 8;
      if (n.input(0).find("fc2.weight") != std::string::npos) n_elems = 16;
      if (n_elems == 0) continue;  // activations: N depends on the inferred shape
      EXPECT_FLOAT_EQ(g, static_cast<float>(1.0 / std::sqrt(double(n_elems) * qp_weight)))
          << n.input(0);
      ++checked;
    }
    EXPECT_EQ(checked, 2);
  }
}

// Node overrides from the options and from the table: the last layer stays
// at 8 bits (no Clip on its weight), keep_float leaves a node alone.
TEST(NodeOverrideTest, OptionsAndTable) {
  const Model mlp = SmallMlp();
  const Dataset data = Blobs(64, 1);
  const std::vector<std::string> gemms = GemmNames(mlp);
  ASSERT_EQ(gemms.size(), 2u);
  auto table = Calibrate(mlp, data, {});
  ASSERT_TRUE(table.ok());
  QuantizeOptions qo;
  qo.weight_bits = 3;
  qo.node_overrides[gemms[1]].weight_bits = 8;
  auto q = QuantizeModel(mlp, *table, qo);
  ASSERT_TRUE(q.ok()) << q.status();
  std::map<std::string, QuantRange> clips = ClipBounds(*q);
  ASSERT_EQ(clips.size(), 2u);  // the weights (activations at 8 bits)
  for (const auto& [input, range] : clips) {
    if (input.find("fc1.weight") != std::string::npos) EXPECT_EQ(range, (QuantRange{-4, 3}));
    if (input.find("fc2.weight") != std::string::npos) EXPECT_EQ(range, QuantRange::Int8Narrow());
  }

  // The same through the table's JSON, and keep_float.
  const std::string json = absl::StrCat(
      R"({"version": 1, "tensors": {}, "node_overrides": {")", gemms[1],
      R"(": {"keep_float": true}, ")", gemms[0], R"(": {"weight_bits": 8}}})");
  auto overrides = CalibrationTable::FromJson(json, "overrides.json");
  ASSERT_TRUE(overrides.ok()) << overrides.status();
  EXPECT_TRUE(overrides->node_overrides().at(gemms[1]).keep_float);
  EXPECT_EQ(overrides->node_overrides().at(gemms[0]).weight_bits, 8);
  CalibrationTable merged = *table;
  ASSERT_TRUE(merged.Merge(*overrides, MergeRule::kReplace).ok());
  // Round trip.
  auto again = CalibrationTable::FromJson(*merged.ToJson(), "again");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->node_overrides(), merged.node_overrides());
  QuantizeOptions w3;
  w3.weight_bits = 3;
  auto q2 = QuantizeModel(mlp, *again, w3);
  ASSERT_TRUE(q2.ok()) << q2.status();
  clips = ClipBounds(*q2);  // fc1 at 8 bits, fc2 float
  ASSERT_EQ(clips.size(), 1u);
  EXPECT_EQ(clips.begin()->second, QuantRange::Int8Narrow());
  int quantize_linear = 0;
  for (const auto& n : GraphOf(*q2).node()) quantize_linear += n.op_type() == "QuantizeLinear";
  EXPECT_EQ(quantize_linear, 3);  // input, fc1.weight, fc1 out
  // An old table (no node_overrides) prints no such field.
  EXPECT_THAT(*table->ToJson(), ::testing::Not(HasSubstr("node_overrides")));
}

TEST(LowBitErrorsTest, BadBitsRejected) {
  const Model mlp = SmallMlp();
  const Dataset data = Blobs(16, 1);
  auto table = Calibrate(mlp, data, {});
  ASSERT_TRUE(table.ok());
  for (int bits : {0, 1, 9, 16}) {
    QuantizeOptions qo;
    qo.weight_bits = bits;
    EXPECT_THAT(std::string(QuantizeModel(mlp, *table, qo).status().message()),
                HasSubstr("weight bits must be from 2 to 8"));
    qo = {};
    qo.activation_bits = bits;
    EXPECT_THAT(std::string(QuantizeModel(mlp, *table, qo).status().message()),
                HasSubstr("activation bits must be from 2 to 8"));
    CalibrateOptions co;
    co.activation_bits = bits;
    EXPECT_THAT(std::string(Calibrate(mlp, data, co).status().message()),
                HasSubstr("activation bits must be from 2 to 8"));
  }
  QuantizeOptions qo;
  qo.node_overrides["no_such_node"].weight_bits = 4;
  EXPECT_THAT(std::string(QuantizeModel(mlp, *table, qo).status().message()),
              HasSubstr("'no_such_node'"));
  qo = {};
  qo.node_overrides[GemmNames(mlp)[0]].weight_bits = 12;
  EXPECT_THAT(std::string(QuantizeModel(mlp, *table, qo).status().message()),
              HasSubstr("weight_bits must be 0 or from 2 to 8, got 12"));
  for (const char* bad : {R"({"version": 1, "node_overrides": {"n": {"weight_bits": 1}}})",
                          R"({"version": 1, "node_overrides": {"n": {"bits": 4}}})",
                          R"({"version": 1, "node_overrides": {"n": 4}})"}) {
    EXPECT_EQ(CalibrationTable::FromJson(bad, "bad.json").status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
  // A table entry's bits: 2 up to its type's width.
  const char* entry =
      R"({"version": 1, "tensors": {"x": {"role": "activation", "type": "uint8", "bits": %d,
      "method": "minmax", "symmetric": false, "reduce_range": false, "rmin": 0, "rmax": 1,
      "scale": 0.1, "zero_point": 0}}})";
  char text[512];
  std::snprintf(text, sizeof(text), entry, 3);
  auto three = CalibrationTable::FromJson(text, "three.json");
  ASSERT_TRUE(three.ok()) << three.status();
  EXPECT_EQ(three->Find("x")->quant_range(), (QuantRange{0, 7}));
  std::snprintf(text, sizeof(text), entry, 9);
  EXPECT_FALSE(CalibrationTable::FromJson(text, "nine.json").ok());
  std::snprintf(text, sizeof(text), entry, 1);
  EXPECT_FALSE(CalibrationTable::FromJson(text, "one.json").ok());
}

}  // namespace
}  // namespace qat
