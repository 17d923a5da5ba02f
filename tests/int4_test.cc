// Packed 4-bit tensors (INT4 / UINT4) and opset-21 models: packing round
// trips, libqat's own opset-21 checks, and DequantizeLinear-21 with blocks
// in the executor, uint8 block scales.
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/int4_packing.h"
#include "core/onnx_tensor.h"
#include "core/uint8_block_scales.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "qat/executor.h"
#include "qat/export.h"
#include "qat/model.h"
#include "qat/quant_params.h"

namespace qat {
namespace {

using ::testing::HasSubstr;

TEST(Int4PackingTest, RoundTripsOddAndEvenCountsSignedAndUnsigned) {
  for (bool is_signed : {true, false}) {
    for (int64_t n : {0, 1, 2, 7, 8, 33}) {
      SCOPED_TRACE(::testing::Message() << (is_signed ? "INT4" : "UINT4") << " n " << n);
      Tensor t(is_signed ? DataType::kInt8 : DataType::kUInt8, {n});
      for (int64_t i = 0; i < n; ++i) {
        const int v = is_signed ? static_cast<int>(i % 16) - 8 : static_cast<int>((i * 7) % 16);
        if (is_signed) t.data<int8_t>()[i] = static_cast<int8_t>(v);
        else t.data<uint8_t>()[i] = static_cast<uint8_t>(v);
      }
      auto proto = TensorToInt4Proto(t, "w");
      ASSERT_TRUE(proto.ok()) << proto.status();
      EXPECT_EQ(proto->data_type(), is_signed ? kOnnxInt4 : kOnnxUInt4);
      EXPECT_EQ(static_cast<int64_t>(proto->raw_data().size()), (n + 1) / 2);
      auto back = TensorFromProto(*proto);
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_EQ(back->dtype(), t.dtype());
      EXPECT_EQ(back->shape(), t.shape());
      for (int64_t i = 0; i < n; ++i) {
        const int want = is_signed ? t.data<int8_t>()[i] : t.data<uint8_t>()[i];
        const int got = is_signed ? back->data<int8_t>()[i] : back->data<uint8_t>()[i];
        ASSERT_EQ(got, want) << i;
      }
    }
  }
}

TEST(Int4PackingTest, FirstElementInTheLowNibbleAndOddCountsPadWithZero) {
  Tensor t(DataType::kInt8, {3});
  t.data<int8_t>()[0] = 1;
  t.data<int8_t>()[1] = -2;  // 0xE
  t.data<int8_t>()[2] = -8;  // 0x8
  auto proto = TensorToInt4Proto(t, "w");
  ASSERT_TRUE(proto.ok()) << proto.status();
  ASSERT_EQ(proto->raw_data().size(), 2u);
  EXPECT_EQ(static_cast<uint8_t>(proto->raw_data()[0]), 0xE1);
  EXPECT_EQ(static_cast<uint8_t>(proto->raw_data()[1]), 0x08);
}

TEST(Int4PackingTest, RejectsValuesOutsideTheRangeAndWrongPackedLengths) {
  Tensor t(DataType::kInt8, {2});
  t.data<int8_t>()[1] = 8;
  auto proto = TensorToInt4Proto(t, "w");
  EXPECT_EQ(proto.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(proto.status().message()), HasSubstr("element 1 is 8"));
  onnx::TensorProto bad;
  bad.set_name("w4");
  bad.set_data_type(kOnnxUInt4);
  bad.add_dims(5);
  bad.set_raw_data(std::string(2, '\0'));  // 5 values need 3 bytes
  const absl::Status s = CheckTensorProto(bad);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("tensor 'w4': UINT4 raw_data holds 2 bytes but dims [5] need 3"));
  bad.clear_raw_data();
  EXPECT_EQ(CheckTensorProto(bad).code(), absl::StatusCode::kUnimplemented);
}

// x [M, K] -> MatMul(x, DequantizeLinear(W4, scale, zp; axis, block_size))
// with W4 [K, N] of `type` at opset 21 / IR 10; the DQ output is an output
// too.
struct Int4Model {
  int64_t k = 70, n = 3, axis = 0, block = 32;
  bool is_signed = true;
  bool with_zero_point = true;
  std::vector<int64_t> scale_dims;  // default: the blocked shape
};

void AddInt(onnx::NodeProto* node, const char* name, int64_t v) {
  auto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

onnx::ValueInfoProto* Declare(onnx::ValueInfoProto* v, const std::string& name,
                              std::vector<int64_t> dims) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t->mutable_shape()->add_dim()->set_dim_value(d);
  return v;
}

// The values of the weight's integers, scales and zero points, derived from
// the indices so that every block differs.
int WeightLevel(int64_t i, bool is_signed) {
  return is_signed ? static_cast<int>((i * 5) % 16) - 8 : static_cast<int>((i * 5) % 16);
}

onnx::ModelProto MakeInt4Model(const Int4Model& c) {
  onnx::ModelProto m;
  m.set_ir_version(10);
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(21);
  auto* g = m.mutable_graph();
  g->set_name("int4");
  Declare(g->add_input(), "x", {2, c.k});
  Declare(g->add_output(), "y", {2, c.n});
  Declare(g->add_output(), "w", {c.k, c.n});
  const DataType storage = c.is_signed ? DataType::kInt8 : DataType::kUInt8;
  Tensor q(storage, {c.k, c.n});
  for (int64_t i = 0; i < q.num_elements(); ++i) {
    static_cast<uint8_t*>(q.raw_data())[i] = static_cast<uint8_t>(WeightLevel(i, c.is_signed));
  }
  *g->add_initializer() = *TensorToInt4Proto(q, "w_q");
  std::vector<int64_t> sd = c.scale_dims;
  if (sd.empty()) sd = *BlockedParamShape({c.k, c.n}, c.axis, c.block);
  int64_t count = 1;
  for (int64_t d : sd) count *= d;
  std::vector<float> s(count);
  for (int64_t e = 0; e < count; ++e) s[e] = 0.01f * static_cast<float>(e % 9 + 1);
  *g->add_initializer() = TensorToProto(Tensor::FromValues<float>(sd, s), "w_scale");
  std::vector<std::string> dq_inputs = {"w_q", "w_scale"};
  if (c.with_zero_point) {
    Tensor z(storage, sd);
    for (int64_t e = 0; e < count; ++e) {
      static_cast<uint8_t*>(z.raw_data())[e] =
          static_cast<uint8_t>(c.is_signed ? e % 3 - 1 : e % 3 + 7);
    }
    *g->add_initializer() = *TensorToInt4Proto(z, "w_zero_point");
    dq_inputs.push_back("w_zero_point");
  }
  auto* dq = g->add_node();
  dq->set_op_type("DequantizeLinear");
  dq->set_name("dq");
  for (const auto& i : dq_inputs) dq->add_input(i);
  dq->add_output("w");
  AddInt(dq, "axis", c.axis);
  if (c.block > 0) AddInt(dq, "block_size", c.block);
  auto* mm = g->add_node();
  mm->set_op_type("MatMul");
  mm->set_name("matmul");
  mm->add_input("x");
  mm->add_input("w");
  mm->add_output("y");
  return m;
}

absl::StatusOr<Model> Load(const onnx::ModelProto& m) {
  return Model::FromBytes(m.SerializeAsString(), "int4.onnx");
}

TEST(Opset21Test, DequantizeLinearBlocksMatchTheFormulaIncludingThePartialLastBlock) {
  for (const Int4Model& c :
       {Int4Model{70, 3, 0, 32, true, true, {}},    // last block of 6
        Int4Model{64, 3, 0, 32, false, true, {}},   // blocks divide, UINT4
        Int4Model{5, 70, 1, 16, true, false, {}},   // blocks along the last axis, no zp
        Int4Model{7, 3, 1, 0, true, true, {3}}}) {  // per channel, odd count
    SCOPED_TRACE(::testing::Message() << "k " << c.k << " axis " << c.axis << " block "
                                      << c.block);
    auto model = Load(MakeInt4Model(c));
    ASSERT_TRUE(model.ok()) << model.status();
    auto exec = Executor::Create(*model);
    ASSERT_TRUE(exec.ok()) << exec.status();
    Tensor x(DataType::kFloat32, {2, c.k});
    for (int64_t i = 0; i < x.num_elements(); ++i) {
      x.data<float>()[i] = std::sin(static_cast<float>(i));
    }
    auto out = (*exec)->Run({{"x", x}});
    ASSERT_TRUE(out.ok()) << out.status();
    const Tensor& w = out->at("w");
    const int64_t nb = c.block > 0 ? ((c.axis == 0 ? c.k : c.n) - 1) / c.block + 1 : 0;
    for (int64_t r = 0; r < c.k; ++r) {
      for (int64_t col = 0; col < c.n; ++col) {
        const int64_t i = r * c.n + col;
        int64_t e;
        if (c.block == 0) e = col;
        else if (c.axis == 0) e = (r / c.block) * c.n + col;
        else e = r * nb + col / c.block;
        const float s = 0.01f * static_cast<float>(e % 9 + 1);
        const int z = c.with_zero_point ? (c.is_signed ? static_cast<int>(e % 3) - 1
                                                       : static_cast<int>(e % 3) + 7)
                                        : 0;
        const float want = static_cast<float>(WeightLevel(i, c.is_signed) - z) * s;
        ASSERT_EQ(w.data<float>()[i], want) << "row " << r << " column " << col;
      }
    }
  }
}

void ExpectRejected(const onnx::ModelProto& m, const std::string& fragment) {
  auto model = Load(m);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument) << model.status();
  EXPECT_THAT(std::string(model.status().message()), HasSubstr(fragment));
}

TEST(Opset21Test, BadFilesAreRejectedWithAClearError) {
  {
    // A wrong packed length.
    onnx::ModelProto m = MakeInt4Model({});
    m.mutable_graph()->mutable_initializer(0)->mutable_raw_data()->pop_back();
    ExpectRejected(m, "tensor 'w_q': INT4 raw_data holds 104 bytes but dims [70,3] need 105");
  }
  // A block size that does not fit the scale: blocks of 32 need [3, 3].
  ExpectRejected(MakeInt4Model({70, 3, 0, 32, true, true, {2, 3}}),
                 "block_size 32 along axis 0 of 'w_q' [70,3] needs 'w_scale' of shape [3,3], "
                 "got [2,3]");
  {
    // A 4-bit tensor read by an op other than DequantizeLinear.
    onnx::ModelProto m = MakeInt4Model({});
    m.mutable_graph()->mutable_node(1)->set_input(1, "w_q");
    ExpectRejected(m, "reads the 4-bit tensor 'w_q' as input 1");
  }
  {
    // An op that changed after opset 17 in a way libqat does not run.
    onnx::ModelProto m = MakeInt4Model({});
    auto* split = m.mutable_graph()->add_node();
    split->set_op_type("Split");
    split->set_name("split");
    split->add_input("y");
    split->add_output("a");
    auto* a = split->add_attribute();
    a->set_name("num_outputs");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(2);
    ExpectRejected(m, "node 'split' (Split) uses a num_outputs other than its number of outputs");
  }
  {
    // A block scale computed from uint8 codes: the codes' shape must be the
    // blocked one, and only a DequantizeLinear of an initializer may compute it.
    for (const bool wrong_shape : {true, false}) {
      onnx::ModelProto m = MakeInt4Model({70, 3, 0, 32, true, true, {2, 3}});
      auto* g = m.mutable_graph();
      for (auto& t : *g->mutable_initializer()) {
        if (t.name() == "w_scale") t.set_name("w_scale_source");
      }
      Tensor codes(DataType::kUInt8, {2, 3});
      *g->add_initializer() = TensorToProto(codes, "w_codes");
      *g->add_initializer() =
          TensorToProto(Tensor::FromValues<float>({3}, {0.5f, 0.5f, 0.5f}), "w_step");
      onnx::NodeProto scale_node;
      scale_node.set_name("scale");
      if (wrong_shape) {
        scale_node.set_op_type("DequantizeLinear");
        scale_node.add_input("w_codes");
        scale_node.add_input("w_step");
        AddInt(&scale_node, "axis", 1);
      } else {
        scale_node.set_op_type("Identity");  // computed, but not by a DequantizeLinear
        scale_node.add_input("w_scale_source");
      }
      scale_node.add_output("w_scale");
      auto* nodes = g->mutable_node();
      nodes->Add()->Swap(&scale_node);
      for (int i = nodes->size() - 1; i > 0; --i) nodes->SwapElements(i, i - 1);
      ExpectRejected(m, wrong_shape
                            ? "needs 'w_scale' of shape [3,3], got [2,3]"
                            : "libqat needs its scale to be an initializer or a "
                              "DequantizeLinear of one");
    }
  }
  {
    onnx::ModelProto m = MakeInt4Model({});
    m.set_ir_version(11);
    ExpectRejected(m, "ir_version 11");
  }
  {
    // Opsets 18-20 are not accepted (only 21, which libqat checks).
    onnx::ModelProto m = MakeInt4Model({});
    m.mutable_opset_import(0)->set_version(19);
    auto model = Load(m);
    EXPECT_FALSE(model.ok());
  }
}

}  // namespace
}  // namespace qat

namespace qat {
namespace {

// x -> FakeQuant(uint8, per tensor) -> MatMul(., FakeQuant(W; 4-bit, axis 0,
// block_size)) -> y: what prepare's eval model holds for a 4-bit weight.
Model FakeQuantMatMul(int64_t k, int64_t n, int64_t block,
                      const std::vector<float>& scales = {}) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  for (const auto& [domain, version] :
       std::vector<std::pair<std::string, int64_t>>{{"", 13}, {"ai.libqat", 1},
                                                    {"com.microsoft", 1}}) {
    auto* op = m.add_opset_import();
    op->set_domain(domain);
    op->set_version(version);
  }
  auto* g = m.mutable_graph();
  g->set_name("fq");
  Declare(g->add_input(), "x", {2, k});
  Declare(g->add_output(), "y", {2, n});
  Tensor w(DataType::kFloat32, {k, n});
  for (int64_t i = 0; i < w.num_elements(); ++i) {
    w.data<float>()[i] = 0.3f * std::cos(0.7f * static_cast<float>(i));
  }
  *g->add_initializer() = TensorToProto(w, "W");
  std::vector<int64_t> ps = block > 0 ? *BlockedParamShape({k, n}, 0, block)
                                      : std::vector<int64_t>{n};
  int64_t count = 1;
  for (int64_t d : ps) count *= d;
  std::vector<float> s(count), z(count, 0.0f);
  for (int64_t e = 0; e < count; ++e) s[e] = 0.02f + 0.01f * static_cast<float>(e % 5);
  if (!scales.empty()) s = scales;
  *g->add_initializer() = TensorToProto(Tensor::FromValues<float>(ps, s), "W_scale");
  *g->add_initializer() = TensorToProto(Tensor::FromValues<float>(ps, z), "W_zp");
  *g->add_initializer() = TensorToProto(Tensor::Scalar<float>(0.02f), "x_scale");
  *g->add_initializer() = TensorToProto(Tensor::Scalar<float>(128.0f), "x_zp");
  auto* fx = g->add_node();
  fx->set_op_type("FakeQuant");
  fx->set_domain("com.microsoft");
  fx->set_name("fq_x");
  for (const char* i : {"x", "x_scale", "x_zp"}) fx->add_input(i);
  fx->add_output("xq");
  AddInt(fx, "quant_min", 0);
  AddInt(fx, "quant_max", 255);
  auto* fw = g->add_node();
  fw->set_op_type("FakeQuant");
  fw->set_domain("ai.libqat");
  fw->set_name("fq_w");
  for (const char* i : {"W", "W_scale", "W_zp"}) fw->add_input(i);
  fw->add_output("Wq");
  AddInt(fw, "quant_min", -8);
  AddInt(fw, "quant_max", 7);
  AddInt(fw, "axis", block > 0 ? 0 : 1);
  if (block > 0) AddInt(fw, "block_size", block);
  auto* mm = g->add_node();
  mm->set_op_type("MatMul");
  mm->set_name("matmul");
  mm->add_input("xq");
  mm->add_input("Wq");
  mm->add_output("y");
  auto model = Model::FromBytes(m.SerializeAsString(), "eval.onnx");
  EXPECT_TRUE(model.ok()) << model.status();
  return *model;
}

Tensor RunY(const Model& m, int64_t k) {
  Tensor x(DataType::kFloat32, {2, k});
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    x.data<float>()[i] = std::sin(1.3f * static_cast<float>(i));
  }
  auto exec = Executor::Create(m);
  EXPECT_TRUE(exec.ok()) << exec.status();
  auto out = (*exec)->Run({{"x", x}});
  EXPECT_TRUE(out.ok()) << out.status();
  return out->at("y");
}

// The stored weight: the initializer of `type` with W's dims [10, 3].
const onnx::TensorProto* FindInit(const onnx::ModelProto& m, int32_t type) {
  for (const auto& t : m.graph().initializer()) {
    if (t.data_type() == type && t.dims_size() == 2 && t.dims(0) == 10) return &t;
  }
  return nullptr;
}

TEST(Int4ExportTest, FourBitWeightsExportPackedAtOpset21AndRunAsTrained) {
  for (int64_t block : {0, 4}) {  // per channel, and blocks of 4 over K = 10
    SCOPED_TRACE(::testing::Message() << "block " << block);
    const Model eval = FakeQuantMatMul(10, 3, block);
    auto exported = ExportQuantizedModel(eval);
    ASSERT_TRUE(exported.ok()) << exported.status();
    onnx::ModelProto proto;
    ASSERT_TRUE(proto.ParseFromString(exported->Serialize()));
    EXPECT_EQ(proto.ir_version(), 10);
    int64_t opset = 0;
    for (const auto& op : proto.opset_import()) {
      if (op.domain().empty()) opset = op.version();
    }
    EXPECT_EQ(opset, 21);
    const onnx::TensorProto* w4 = FindInit(proto, kOnnxInt4);
    ASSERT_NE(w4, nullptr);
    EXPECT_EQ(w4->raw_data().size(), 15u);  // 30 values, two per byte
    bool block_attr = false;
    for (const auto& n : proto.graph().node()) {
      for (const auto& a : n.attribute()) block_attr |= a.name() == "block_size" && a.i() == 4;
    }
    EXPECT_EQ(block_attr, block > 0);
    // The file loads again (libqat's opset-21 checks) and computes what the
    // FakeQuant model computed.
    auto reloaded = Model::FromBytes(exported->Serialize(), "exported.onnx");
    ASSERT_TRUE(reloaded.ok()) << reloaded.status();
    const Tensor want = RunY(eval, 10);
    const Tensor got = RunY(*reloaded, 10);
    ASSERT_EQ(want.num_elements(), got.num_elements());
    for (int64_t i = 0; i < want.num_elements(); ++i) {
      ASSERT_EQ(want.data<float>()[i], got.data<float>()[i]) << i;
    }
  }
}

// The DequantizeLinear that computes a block DequantizeLinear's scale from
// uint8 codes, or nullptr.
const onnx::NodeProto* ScaleDequantizer(const onnx::ModelProto& m) {
  for (const auto& n : m.graph().node()) {
    if (n.op_type() != "DequantizeLinear") continue;
    for (const auto& t : m.graph().initializer()) {
      if (t.name() == n.input(0) && t.data_type() == onnx::TensorProto::UINT8) return &n;
    }
  }
  return nullptr;
}

void ExpectSameOutputs(const Model& a, const Model& b, int64_t k) {
  const Tensor want = RunY(a, k);
  const Tensor got = RunY(b, k);
  ASSERT_EQ(want.num_elements(), got.num_elements());
  for (int64_t i = 0; i < want.num_elements(); ++i) {
    ASSERT_EQ(want.data<float>()[i], got.data<float>()[i]) << i;
  }
}

TEST(Uint8BlockScalesTest, SnapsToCodesTimesAPowerOfTwoStepPerChannelIdempotently) {
  // [3 blocks, 4 channels] blocked along axis 0: one step per column.
  std::vector<float> s(12);
  for (int i = 0; i < 12; ++i) s[i] = 0.013f * (1.0f + std::fabs(std::sin(1.7f * i))) * (1 + i % 4);
  auto snapped = SnapToUint8BlockScales(s, 3, 4, /*block_axis=*/0);
  ASSERT_TRUE(snapped.ok()) << snapped.status();
  EXPECT_EQ(snapped->axis, 1);
  ASSERT_EQ(snapped->steps.size(), 4u);
  for (int c = 0; c < 4; ++c) {
    int e = 0;
    EXPECT_EQ(std::frexp(snapped->steps[c], &e), 0.5f) << "a power of two";
    int top = 0;
    float max_s = 0.0f;
    for (int r = 0; r < 3; ++r) {
      top = std::max<int>(top, snapped->codes[r * 4 + c]);
      max_s = std::max(max_s, s[r * 4 + c]);
    }
    EXPECT_GE(top, 128);  // the least power of two: the largest code is >= 128
    EXPECT_GE(snapped->steps[c] * 255.0f, max_s);
  }
  const std::vector<float> back = DequantizeBlockScales(*snapped, 3, 4);
  for (int i = 0; i < 12; ++i) {
    EXPECT_NEAR(back[i], s[i], snapped->steps[i % 4] / 2) << i;  // nearest code
  }
  // Snapped scales are recognized, with the same codes; raw floats are not.
  auto exact = ExactUint8BlockScales(back, 3, 4, 0);
  ASSERT_TRUE(exact.has_value());
  EXPECT_EQ(exact->codes, snapped->codes);
  EXPECT_EQ(exact->steps, snapped->steps);
  EXPECT_FALSE(ExactUint8BlockScales(s, 3, 4, 0).has_value());
  // Blocked along axis 1: one step per row.
  auto rows = SnapToUint8BlockScales(s, 3, 4, /*block_axis=*/1);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->axis, 0);
  EXPECT_EQ(rows->steps.size(), 3u);
}

TEST(Uint8BlockScalesTest, IgnoredBlocksDoNotSetTheStepAndBadScalesAreRejected) {
  // Channel 0 holds an all-zero block whose scale (1) is arbitrary.
  const std::vector<float> s = {1.0f, 0.5f, 0.01f, 0.5f};
  auto snapped = SnapToUint8BlockScales(s, 2, 2, 0, {true, false, false, false});
  ASSERT_TRUE(snapped.ok()) << snapped.status();
  // Column 0's step comes from 0.01 alone: the least power of two >= 0.01 /
  // 255 is 2^-14, and 0.01 / 2^-14 = 163.84 rounds to 164.
  EXPECT_EQ(snapped->steps[0], std::ldexp(1.0f, -14));
  EXPECT_EQ(snapped->codes[0], 1);
  EXPECT_EQ(snapped->codes[2], 164);
  EXPECT_EQ(snapped->steps[1], std::ldexp(1.0f, -8));  // 0.5 / 255 > 2^-9
  EXPECT_EQ(snapped->codes[1], 128);
  for (const std::vector<float>& bad : {std::vector<float>{0.1f, 0.0f, 0.1f, 0.1f},
                                        std::vector<float>{0.1f, -1.0f, 0.1f, 0.1f},
                                        std::vector<float>{0.1f, NAN, 0.1f, 0.1f},
                                        std::vector<float>{1e-40f, 1e-40f, 1e-40f, 1e-40f}}) {
    auto r = SnapToUint8BlockScales(bad, 2, 2, 0);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_FALSE(SnapToUint8BlockScales(s, 3, 2, 0).ok());  // 4 scales are not [3, 2]
  EXPECT_FALSE(SnapToUint8BlockScales(s, 2, 2, 2).ok());  // no axis 2
}

TEST(Int4ExportTest, Uint8BlockScalesExportAsCodesBehindADequantizeLinearExactly) {
  // Scales that are already uint8 codes times a step (quantize's
  // uint8_block_scales, fixed in training): written as codes without an
  // option, the symmetric weight without a zero point, and the file computes
  // exactly what the FakeQuant model computed.
  const int64_t k = 10, n = 3, block = 4;  // blocks [3, 3]
  std::vector<float> raw(9);
  for (int i = 0; i < 9; ++i) raw[i] = 0.02f + 0.003f * static_cast<float>(i);
  auto snapped = SnapToUint8BlockScales(raw, 3, 3, 0);
  ASSERT_TRUE(snapped.ok());
  const std::vector<float> on_grid = DequantizeBlockScales(*snapped, 3, 3);
  const Model eval = FakeQuantMatMul(k, n, block, on_grid);
  auto exported = ExportQuantizedModel(eval);
  ASSERT_TRUE(exported.ok()) << exported.status();
  onnx::ModelProto proto;
  ASSERT_TRUE(proto.ParseFromString(exported->Serialize()));
  const onnx::NodeProto* sdq = ScaleDequantizer(proto);
  ASSERT_NE(sdq, nullptr) << "no uint8 codes";
  for (const auto& node : proto.graph().node()) {
    if (node.op_type() == "DequantizeLinear" && node.output(0) != sdq->output(0) &&
        node.input(1) == sdq->output(0)) {
      EXPECT_EQ(node.input_size(), 2) << "a symmetric INT4 weight needs no zero point";
    }
  }
  auto reloaded = Model::FromBytes(exported->Serialize(), "exported.onnx");
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  ExpectSameOutputs(eval, *reloaded, k);

  // Scales off that form: floats as before, unless the export snaps them;
  // then the file is the FakeQuant model with the snapped scales.
  const Model moved = FakeQuantMatMul(k, n, block, raw);
  auto plain = ExportQuantizedModel(moved);
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_TRUE(proto.ParseFromString(plain->Serialize()));
  EXPECT_EQ(ScaleDequantizer(proto), nullptr);
  ExportOptions options;
  options.uint8_block_scales = true;
  auto forced = ExportQuantizedModel(moved, {}, options);
  ASSERT_TRUE(forced.ok()) << forced.status();
  ASSERT_TRUE(proto.ParseFromString(forced->Serialize()));
  EXPECT_NE(ScaleDequantizer(proto), nullptr);
  // (On 9 scales the extra node outweighs the bytes saved; the MLP's and
  // the transformer's exports are smaller: test_int4.py, cli.block_qat.)
  auto forced_loaded = Model::FromBytes(forced->Serialize(), "forced.onnx");
  ASSERT_TRUE(forced_loaded.ok()) << forced_loaded.status();
  ExpectSameOutputs(eval, *forced_loaded, k);
}

TEST(Int4ExportTest, Opset13KeepsTheClipFormAndRefusesBlocks) {
  ExportOptions options;
  options.opset = 13;
  auto exported = ExportQuantizedModel(FakeQuantMatMul(10, 3, 0), {}, options);
  ASSERT_TRUE(exported.ok()) << exported.status();
  onnx::ModelProto proto;
  ASSERT_TRUE(proto.ParseFromString(exported->Serialize()));
  EXPECT_EQ(FindInit(proto, kOnnxInt4), nullptr);
  EXPECT_NE(FindInit(proto, onnx::TensorProto::INT8), nullptr);
  auto blocked = ExportQuantizedModel(FakeQuantMatMul(10, 3, 4), {}, options);
  ASSERT_FALSE(blocked.ok());
  EXPECT_EQ(blocked.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(blocked.status().message()), HasSubstr("export at opset 21"));
  options.opset = 17;
  EXPECT_EQ(ExportQuantizedModel(FakeQuantMatMul(10, 3, 0), {}, options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace qat
