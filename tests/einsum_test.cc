// Einsum's fast path (restrides and Gemm contractions) against its plain
// reference loop, on equations that ONNX's node tests do not reach: several
// operands, diagonals inside contractions, traces, broadcasting through the
// ellipsis and through size-1 axes, implicit outputs, integers; and the
// equations and shapes it must refuse.
#include <cmath>
#include <string>
#include <vector>

#include "exec/ops/einsum.h"
#include "gradient_check.h"
#include "gtest/gtest.h"
#include "qat/thread_pool.h"

namespace qat {
namespace {

using testing::RandomTensor;

struct EinsumCase {
  std::string equation;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<int64_t> want_shape;
};

std::vector<const Tensor*> Pointers(const std::vector<Tensor>& ts) {
  std::vector<const Tensor*> p;
  for (const Tensor& t : ts) p.push_back(&t);
  return p;
}

TEST(EinsumTest, FastPathMatchesTheReference) {
  const EinsumCase cases[] = {
      {"ij,jk->ik", {{3, 4}, {4, 5}}, {3, 5}},
      {"ij,jk", {{3, 4}, {4, 5}}, {3, 5}},
      {"ba,cb", {{3, 4}, {5, 3}}, {4, 5}},  // implicit: ASCII order, "ac"
      {"bij,bjk->bik", {{2, 3, 4}, {2, 4, 5}}, {2, 3, 5}},
      {"...ij,...jk->...ik", {{2, 1, 3, 4}, {3, 4, 5}}, {2, 3, 3, 5}},
      {"...ii->...i", {{2, 3, 3}}, {2, 3}},
      {"ii", {{4, 4}}, {}},
      {"ii->i", {{4, 4}}, {4}},
      {"iij,jk->ik", {{3, 3, 4}, {4, 2}}, {3, 2}},
      {"ij,jk,kl->il", {{2, 3}, {3, 4}, {4, 5}}, {2, 5}},
      {"abc,cd,bd->a", {{2, 3, 4}, {4, 5}, {3, 5}}, {2}},
      {"i,j->ij", {{3}, {4}}, {3, 4}},
      {"i,i", {{5}, {5}}, {}},
      {"ij->", {{3, 4}}, {}},
      {"ij->ji", {{3, 4}}, {4, 3}},
      {"ij,ij->ij", {{1, 4}, {3, 4}}, {3, 4}},
      {"bhqd,bhkd->bhqk", {{2, 2, 3, 4}, {2, 2, 5, 4}}, {2, 2, 3, 5}},
      {"...,...->...", {{2, 3}, {3}}, {2, 3}},
      {"i...j,j...->i...", {{2, 3, 4}, {4, 3}}, {2, 3}},
  };
  ThreadPool pool(2);
  uint32_t seed = 1;
  for (const EinsumCase& c : cases) {
    SCOPED_TRACE(c.equation);
    std::vector<Tensor> inputs;
    for (const auto& s : c.shapes) inputs.push_back(RandomTensor(s, seed++));
    Tensor fast, plain;
    ASSERT_TRUE(exec::Einsum(&pool, c.equation, Pointers(inputs), &fast).ok());
    ASSERT_TRUE(exec::EinsumReference(c.equation, Pointers(inputs), &plain).ok());
    EXPECT_EQ(fast.shape(), c.want_shape);
    ASSERT_EQ(fast.shape(), plain.shape());
    for (int64_t i = 0; i < fast.num_elements(); ++i) {
      const float p = plain.data<float>()[i];
      EXPECT_NEAR(fast.data<float>()[i], p, 1e-5f + 1e-5f * std::fabs(p)) << i;
    }
  }
}

TEST(EinsumTest, IntegersAreExact) {
  Tensor a = Tensor::FromValues<int64_t>({2, 3}, std::vector<int64_t>{1, -2, 3, 4, 5, -6});
  Tensor b = Tensor::FromValues<int64_t>({3, 2}, std::vector<int64_t>{7, 8, 9, 10, -11, 12});
  Tensor out;
  ASSERT_TRUE(exec::Einsum(nullptr, "ij,jk->ik", {&a, &b}, &out).ok());
  EXPECT_EQ(out.shape(), (std::vector<int64_t>{2, 2}));
  const std::vector<int64_t> want = {7 - 18 - 33, 8 - 20 + 36, 28 + 45 + 66, 32 + 50 - 72};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(out.data<int64_t>()[i], want[i]) << i;
}

TEST(EinsumTest, BadEquationsAndShapesAreInvalidArguments) {
  const Tensor m = RandomTensor({3, 4}, 1);
  const Tensor v = RandomTensor({5}, 2);
  const struct {
    std::string equation;
    std::vector<const Tensor*> inputs;
  } bad[] = {
      {"ij,jk->ik", {&m}},           // two terms, one input
      {"ijk->i", {&m}},              // more labels than axes
      {"i->i", {&m}},                // fewer labels than axes, no ellipsis
      {"ij,j->i", {&m, &v}},         // j is 4 and 5
      {"ij->k", {&m}},               // output label in no input
      {"ij->ii", {&m}},              // repeated output label
      {"i1->i", {&m}},               // not a letter
      {"......->", {&m}},            // two ellipses
      {"...j->j", {&m}},             // ellipsis axes missing from the output
  };
  for (const auto& b : bad) {
    Tensor out;
    const absl::Status s = exec::Einsum(nullptr, b.equation, b.inputs, &out);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << b.equation << ": " << s;
    EXPECT_NE(s.message().find("Einsum"), std::string::npos) << s;
  }
}

}  // namespace
}  // namespace qat
