// The row fast paths of the executor's elementwise, copy and reduction
// loops (exec/ops/op_util.h: BroadcastBinary, StridedCopy; Reduce*'s Fold)
// against plain index arithmetic written here: every shape, on or off the
// row path, gives the same bits as the reference, with 1 and 2 threads.
#include <cstdint>
#include <string>
#include <vector>

#include "exec/ops/op_util.h"
#include "gradient_check.h"
#include "graph_builder.h"
#include "gtest/gtest.h"
#include "qat/executor.h"
#include "qat/thread_pool.h"

namespace qat {
namespace {

using testing::RandomTensor;

// The flat index into `shape` (broadcast to `out`) of out's flat index i.
int64_t SourceIndex(const std::vector<int64_t>& shape, const std::vector<int64_t>& out,
                    int64_t i) {
  int64_t src = 0, stride = 1;
  const size_t shift = out.size() - shape.size();
  for (int64_t d = static_cast<int64_t>(out.size()) - 1; d >= 0; --d) {
    const int64_t idx = i % out[d];
    i /= out[d];
    if (d >= static_cast<int64_t>(shift)) {
      const int64_t n = shape[d - shift];
      src += (n == 1 ? 0 : idx) * stride;
      stride *= n;
    }
  }
  return src;
}

struct BinaryCase {
  std::vector<int64_t> a, b;
};

TEST(RowPathsTest, BroadcastBinaryMatchesIndexArithmetic) {
  const std::vector<BinaryCase> cases = {
      {{4, 5, 32}, {32}},           // + bias: rows of 32, both contiguous
      {{4, 5, 32}, {4, 5, 1}},      // - mean: b constant over each row
      {{4, 5, 32}, {4, 5, 32}},     // same shape
      {{1}, {3, 40}},               // scalar first
      {{3, 1, 32}, {1, 6, 32}},     // both broadcast, rows of 32
      {{2, 3, 8}, {3, 8}},          // rows of 24 over two dims
      {{2, 3, 7}, {2, 1, 7}},       // rows of 7: the element walk
      {{5, 17, 1}, {5, 1, 33}},     // an outer product: the element walk
      {{6, 1, 20}, {6, 4, 20}},     // a middle broadcast
      {{2, 16, 1, 1}, {2, 16, 1, 1}},  // trailing size-1 dimensions
  };
  ThreadPool two(2);
  for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &two}) {
    for (size_t c = 0; c < cases.size(); ++c) {
      SCOPED_TRACE(::testing::Message() << "case " << c << (pool ? ", 2 threads" : ""));
      const Tensor a = RandomTensor(cases[c].a, 1 + c);
      const Tensor b = RandomTensor(cases[c].b, 101 + c, 0.5f, 2.0f);
      Tensor out;
      auto f = [](float x, float y) { return x / y - x * y; };
      ASSERT_TRUE((exec::BroadcastBinary<float, float, float>(pool, a, b, out, f).ok()));
      for (int64_t i = 0; i < out.num_elements(); ++i) {
        const float x = a.data<float>()[SourceIndex(a.shape(), out.shape(), i)];
        const float y = b.data<float>()[SourceIndex(b.shape(), out.shape(), i)];
        ASSERT_EQ(out.data<float>()[i], x / y - x * y) << i;
      }
      // The other operand order reads the constant side first.
      auto g = [](float x, float y) { return x - y; };
      ASSERT_TRUE((exec::BroadcastBinary<float, float, float>(pool, b, a, out, g).ok()));
      for (int64_t i = 0; i < out.num_elements(); ++i) {
        const float x = b.data<float>()[SourceIndex(b.shape(), out.shape(), i)];
        const float y = a.data<float>()[SourceIndex(a.shape(), out.shape(), i)];
        ASSERT_EQ(out.data<float>()[i], x - y) << i;
      }
    }
  }
}

TEST(RowPathsTest, StridedCopyMatchesIndexArithmetic) {
  // A [3, 4, 32] source read as its transposes: (1, 0, 2) keeps rows of 32
  // (memcpy), (2, 0, 1) moves the last axis (the element walk).
  const Tensor src = RandomTensor({3, 4, 32}, 7);
  const std::vector<int64_t> own = {128, 32, 1};
  for (const std::vector<int64_t>& perm : {std::vector<int64_t>{1, 0, 2},
                                           std::vector<int64_t>{2, 0, 1},
                                           std::vector<int64_t>{0, 1, 2}}) {
    std::vector<int64_t> shape, strides;
    for (int64_t p : perm) {
      shape.push_back(src.dim(p));
      strides.push_back(own[p]);
    }
    Tensor dst(DataType::kFloat32, shape);
    exec::StridedCopy(nullptr, src, 0, strides, dst);
    for (int64_t i = 0; i < dst.num_elements(); ++i) {
      int64_t rem = i, s = 0;
      for (int d = 2; d >= 0; --d) {
        s += (rem % shape[d]) * strides[d];
        rem /= shape[d];
      }
      ASSERT_EQ(dst.data<float>()[i], src.data<float>()[s]) << i;
    }
  }
}

// One Reduce node over x at opset 13, run once.
Tensor RunReduce(const std::string& op, const Tensor& x, const std::vector<int64_t>& axes) {
  GraphBuilder g;
  onnx::ModelProto proto = g.proto();
  onnx::GraphProto* graph = proto.mutable_graph();
  *graph->add_initializer() = TensorToProto(x, "x");
  onnx::NodeProto* node = graph->add_node();
  node->set_op_type(op);
  node->add_input("x");
  node->add_output("y");
  if (op == "ReduceSum") {  // opset 13 moved its axes to an input
    *graph->add_initializer() = TensorToProto(
        Tensor::FromValues<int64_t>({static_cast<int64_t>(axes.size())}, axes), "axes");
    node->add_input("axes");
  } else {
    onnx::AttributeProto* a = node->add_attribute();
    a->set_name("axes");
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t v : axes) a->add_ints(v);
  }
  GraphBuilder::Declare(graph->add_output(), "y", kFloat, {});
  graph->mutable_output(0)->mutable_type()->mutable_tensor_type()->clear_shape();
  auto out = RunUncheckedProto(proto, op + ".onnx");
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? out->at("y") : Tensor();
}

TEST(RowPathsTest, ReductionsFoldInFlatOrder) {
  // Trailing axes (the row path), a leading and a middle axis (the walk), and
  // trailing axes behind a kept one (the blocks path: BatchNorm's per-channel
  // sums, with fewer and with more outputs than blocks folded side by side):
  // each output is its elements folded in increasing flat index order.
  struct Case {
    std::vector<int64_t> dims, axes;
  };
  const Case cases[] = {{{3, 4, 50}, {2}},    {{3, 4, 50}, {1, 2}}, {{3, 4, 50}, {-1}},
                        {{3, 4, 50}, {0}},    {{3, 4, 50}, {1}},    {{3, 4, 50}, {0, 2}},
                        {{2, 12, 5}, {0, 2}}, {{4, 3, 2, 6}, {0, 2, 3}}, {{5, 3, 1, 7}, {1, 3}}};
  for (const Case& c : cases) {
    const int rank = static_cast<int>(c.dims.size());
    const Tensor x = RandomTensor(c.dims, 11);
    std::vector<bool> reduced(rank, false);
    for (int64_t a : c.axes) reduced[(a + rank) % rank] = true;
    for (const std::string op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceSumSquare"}) {
      SCOPED_TRACE(op + " over " + std::to_string(c.axes.size()) + " axes from " +
                   std::to_string(c.axes[0]) + " of a rank-" + std::to_string(rank) + " tensor");
      const Tensor y = RunReduce(op, x, c.axes);
      std::vector<float> want(y.num_elements(), op == "ReduceMax" ? -INFINITY : 0.0f);
      int64_t count = 1;
      for (int d = 0; d < rank; ++d) count *= reduced[d] ? c.dims[d] : 1;
      for (int64_t i = 0; i < x.num_elements(); ++i) {
        int64_t o = 0, rest = i, scale = 1;
        for (int d = rank - 1; d >= 0; --d) {
          const int64_t idx = rest % c.dims[d];
          rest /= c.dims[d];
          if (!reduced[d]) {
            o += idx * scale;
            scale *= c.dims[d];
          }
        }
        const float v = x.data<float>()[i];
        if (op == "ReduceMax") {
          want[o] = std::max(want[o], v);
        } else {
          want[o] += op == "ReduceSumSquare" ? v * v : v;
        }
      }
      ASSERT_EQ(static_cast<int64_t>(want.size()), y.num_elements());
      for (size_t o = 0; o < want.size(); ++o) {
        const float w = op == "ReduceMean" ? want[o] / static_cast<float>(count) : want[o];
        ASSERT_EQ(y.data<float>()[o], w) << o;
      }
    }
  }
}

}  // namespace
}  // namespace qat
