// FakeQuant against ONNX's own expected outputs for QuantizeLinear and
// DequantizeLinear (Debian's libonnx-testdata, data/node).
//
// FakeQuant is DequantizeLinear(QuantizeLinear(x)) in float, so:
//  - for test_quantizelinear*, FakeQuant(x) must equal (q - zp) * scale,
//    where q is ONNX's expected output, bit for bit; and the mask must be
//    true wherever q is strictly inside the range;
//  - for test_dequantizelinear*, ONNX's expected output y lies on the grid,
//    so FakeQuant(y) must return y unchanged with the mask true.
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "onnx/onnx_pb.h"
#include "qat/fake_quant.h"

namespace qat {
namespace {

const std::string kNodeDir = std::string(QAT_ONNX_TESTDATA_DIR) + "/node/";

template <typename Proto>
Proto ReadProto(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path
                         << " (install Debian's libonnx-testdata)";
  std::stringstream buffer;
  buffer << in.rdbuf();
  Proto proto;
  EXPECT_TRUE(proto.ParseFromString(buffer.str())) << "cannot parse " << path;
  return proto;
}

// The values of a float, int8 or uint8 tensor, as float.
std::vector<float> Values(const onnx::TensorProto& t) {
  std::vector<float> out;
  const std::string& raw = t.raw_data();
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      if (!raw.empty()) {
        out.resize(raw.size() / sizeof(float));
        std::memcpy(out.data(), raw.data(), out.size() * sizeof(float));
      } else {
        out.assign(t.float_data().begin(), t.float_data().end());
      }
      break;
    case onnx::TensorProto::UINT8:
      if (!raw.empty()) {
        for (char c : raw) out.push_back(static_cast<uint8_t>(c));
      } else {
        out.assign(t.int32_data().begin(), t.int32_data().end());
      }
      break;
    case onnx::TensorProto::INT8:
      if (!raw.empty()) {
        for (char c : raw) out.push_back(static_cast<int8_t>(c));
      } else {
        out.assign(t.int32_data().begin(), t.int32_data().end());
      }
      break;
    default:
      ADD_FAILURE() << "unexpected data type " << t.data_type() << " in "
                    << t.name();
  }
  return out;
}

std::vector<int64_t> Shape(const onnx::TensorProto& t) {
  return {t.dims().begin(), t.dims().end()};
}

struct Case {
  std::vector<int64_t> shape;
  int64_t axis = 1;  // ONNX's default
  std::vector<float> x;
  std::vector<float> scale;
  std::vector<float> zero_point;  // empty: ONNX's default, uint8 zero
  int32_t zero_point_type = onnx::TensorProto::UINT8;
  std::vector<float> expected;
};

Case LoadCase(const std::string& name) {
  Case c;
  const std::string dir = kNodeDir + name;
  const auto model = ReadProto<onnx::ModelProto>(dir + "/model.onnx");
  const onnx::NodeProto& node = model.graph().node(0);
  for (const auto& attr : node.attribute()) {
    if (attr.name() == "axis") c.axis = attr.i();
  }
  const std::string data = dir + "/test_data_set_0/";
  const auto x = ReadProto<onnx::TensorProto>(data + "input_0.pb");
  const auto scale = ReadProto<onnx::TensorProto>(data + "input_1.pb");
  c.shape = Shape(x);
  c.x = Values(x);
  c.scale = Values(scale);
  if (node.input_size() > 2) {
    const auto zp = ReadProto<onnx::TensorProto>(data + "input_2.pb");
    c.zero_point = Values(zp);
    c.zero_point_type = zp.data_type();
  }
  const auto y = ReadProto<onnx::TensorProto>(data + "output_0.pb");
  c.expected = Values(y);
  if (node.op_type() == "DequantizeLinear") c.zero_point_type = x.data_type();
  if (c.zero_point.empty()) c.zero_point.assign(c.scale.size(), 0.0f);
  return c;
}

QuantRange RangeOf(int32_t type) {
  return type == onnx::TensorProto::INT8 ? QuantRange::Int8()
                                         : QuantRange::UInt8();
}

// Runs FakeQuant per tensor or per axis, as the case's parameters say.
void RunFakeQuant(const Case& c, const std::vector<float>& x,
                  std::vector<float>* y, std::unique_ptr<bool[]>* mask) {
  y->assign(x.size(), -1.0f);
  mask->reset(new bool[x.size()]);
  absl::Span<bool> m(mask->get(), x.size());
  const QuantRange range = RangeOf(c.zero_point_type);
  absl::Status status;
  if (c.scale.size() == 1) {
    status = FakeQuantPerTensor(x, absl::MakeSpan(*y), m,
                                {c.scale[0], c.zero_point[0], range});
  } else {
    status = FakeQuantPerChannel(c.shape, x, absl::MakeSpan(*y), m,
                                 {c.scale, c.zero_point, c.axis, range});
  }
  ASSERT_TRUE(status.ok()) << status;
}

// Channel of flat index i for the case's axis (0 for per tensor).
size_t ChannelOf(const Case& c, size_t i) {
  if (c.scale.size() == 1) return 0;
  const int64_t rank = static_cast<int64_t>(c.shape.size());
  const int64_t axis = c.axis < 0 ? c.axis + rank : c.axis;
  int64_t inner = 1;
  for (int64_t d = axis + 1; d < rank; ++d) inner *= c.shape[d];
  return static_cast<size_t>((static_cast<int64_t>(i) / inner) %
                             c.shape[axis]);
}

class QuantizeLinearNodeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(QuantizeLinearNodeTest, FakeQuantEqualsDequantizedExpectedOutput) {
  const Case c = LoadCase(GetParam());
  ASSERT_FALSE(c.x.empty());
  ASSERT_EQ(c.x.size(), c.expected.size());
  std::vector<float> y;
  std::unique_ptr<bool[]> mask;
  RunFakeQuant(c, c.x, &y, &mask);
  const QuantRange range = RangeOf(c.zero_point_type);
  for (size_t i = 0; i < c.x.size(); ++i) {
    const size_t ch = ChannelOf(c, i);
    const float q = c.expected[i];
    const float want = (q - c.zero_point[ch]) * c.scale[ch];
    EXPECT_EQ(y[i], want) << "element " << i << ", x = " << c.x[i]
                          << ", ONNX q = " << q;
    if (q > range.quant_min && q < range.quant_max) {
      EXPECT_TRUE(mask[i]) << "element " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(OnnxNodeTests, QuantizeLinearNodeTest,
                         ::testing::Values("test_quantizelinear",
                                           "test_quantizelinear_axis"));

class DequantizeLinearNodeTest
    : public ::testing::TestWithParam<std::string> {};

TEST_P(DequantizeLinearNodeTest, FakeQuantKeepsGridValues) {
  const Case c = LoadCase(GetParam());
  ASSERT_FALSE(c.x.empty());
  ASSERT_EQ(c.x.size(), c.expected.size());
  // ONNX's expected y is (x - zp) * scale; check that first, then that
  // FakeQuant leaves it unchanged.
  for (size_t i = 0; i < c.x.size(); ++i) {
    const size_t ch = ChannelOf(c, i);
    ASSERT_EQ(c.expected[i], (c.x[i] - c.zero_point[ch]) * c.scale[ch])
        << "element " << i;
  }
  std::vector<float> y;
  std::unique_ptr<bool[]> mask;
  RunFakeQuant(c, c.expected, &y, &mask);
  for (size_t i = 0; i < y.size(); ++i) {
    EXPECT_EQ(y[i], c.expected[i]) << "element " << i;
    EXPECT_TRUE(mask[i]) << "element " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(OnnxNodeTests, DequantizeLinearNodeTest,
                         ::testing::Values("test_dequantizelinear",
                                           "test_dequantizelinear_axis"));

}  // namespace
}  // namespace qat
