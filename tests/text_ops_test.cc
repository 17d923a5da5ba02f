// TfIdfVectorizer (lib/exec/ops/text.cc) on what ONNX's node tests do not
// cover: the IDF and TFIDF modes with weights, int32 2-D input, skips
// against the spec's example, unigrams under skips, and bad attributes,
// which are InvalidArgument naming the node when the executor is created.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "graph_builder.h"
#include "gtest/gtest.h"
#include "qat/executor.h"

namespace qat {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr int kInt64 = onnx::TensorProto::INT64;
constexpr int kInt32 = onnx::TensorProto::INT32;

// A TfIdfVectorizer's attributes; the defaults are a valid node with
// 1-grams {2, 3} and 2-grams {(5, 6), (7, 8)} into columns 0..3.
struct TfIdf {
  std::string mode = "TF";
  int64_t min_gram_length = 1;
  int64_t max_gram_length = 2;
  int64_t max_skip_count = 0;
  std::vector<int64_t> ngram_counts = {0, 2};
  std::vector<int64_t> ngram_indexes = {0, 1, 2, 3};
  std::vector<int64_t> pool_int64s = {2, 3, 5, 6, 7, 8};
  std::vector<float> weights;
  bool pool_strings = false;
};

void AddAttr(onnx::NodeProto& node, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

// A one-node graph x -> TfIdfVectorizer -> y, with x of `elem_type`.
GraphBuilder Graph(const TfIdf& t, int elem_type, std::vector<int64_t> x_shape) {
  GraphBuilder g;
  g.Input("x", elem_type, std::move(x_shape));
  g.Output("y", kFloat, {});
  onnx::NodeProto& node = g.Node("TfIdfVectorizer", {"x"}, {"y"});
  auto* mode = node.add_attribute();
  mode->set_name("mode");
  mode->set_type(onnx::AttributeProto::STRING);
  mode->set_s(t.mode);
  SetInt(node, "min_gram_length", t.min_gram_length);
  SetInt(node, "max_gram_length", t.max_gram_length);
  SetInt(node, "max_skip_count", t.max_skip_count);
  AddAttr(node, "ngram_counts", t.ngram_counts);
  AddAttr(node, "ngram_indexes", t.ngram_indexes);
  AddAttr(node, "pool_int64s", t.pool_int64s);
  if (!t.weights.empty()) {
    auto* w = node.add_attribute();
    w->set_name("weights");
    w->set_type(onnx::AttributeProto::FLOATS);
    for (float x : t.weights) w->add_floats(x);
  }
  if (t.pool_strings) {
    auto* s = node.add_attribute();
    s->set_name("pool_strings");
    s->set_type(onnx::AttributeProto::STRINGS);
    s->add_strings("a");
  }
  return g;
}

// Runs the node on int64 tokens of `shape`; returns y's values and shape.
std::vector<float> Vectorize(const TfIdf& t, std::vector<int64_t> shape, std::vector<int64_t> tokens,
                       std::vector<int64_t>* y_shape = nullptr) {
  GraphBuilder g = Graph(t, kInt64, shape);
  auto out = RunGraph(
      g, {{"x", Tensor::FromValues<int64_t>(std::move(shape), absl::MakeConstSpan(tokens))}});
  EXPECT_TRUE(out.ok()) << out.status();
  if (!out.ok()) return {};
  const Tensor& y = out->at("y");
  if (y_shape != nullptr) *y_shape = y.shape();
  auto v = y.values<float>();
  return std::vector<float>(v.begin(), v.end());
}

TEST(TfIdfVectorizerTest, CountsUnigramsAndBigramsPerRow) {
  TfIdf t;
  std::vector<int64_t> shape;
  // Row 0: 2 twice, (5, 6) once; row 1: 3 once, (7, 8) twice, and the
  // (6, 7) between them is not in the pool.
  EXPECT_THAT(Vectorize(t, {2, 5}, {2, 5, 6, 2, 9, 7, 8, 3, 7, 8}, &shape),
              ElementsAre(2, 0, 1, 0, 0, 1, 0, 2));
  EXPECT_THAT(shape, ElementsAre(2, 4));
  // An n-gram never spans two rows: (6 | 7) across the boundary.
  EXPECT_THAT(Vectorize(t, {2, 2}, {5, 6, 7, 8}), ElementsAre(0, 0, 1, 0, 0, 0, 0, 1));
  EXPECT_THAT(Vectorize(t, {4}, {5, 6, 7, 8}, &shape), ElementsAre(0, 0, 1, 1));
  EXPECT_THAT(shape, ElementsAre(4));
}

TEST(TfIdfVectorizerTest, Int32TokensGiveTheInt64Result) {
  TfIdf t;
  GraphBuilder g = Graph(t, kInt32, {2, 3});
  // Rows [3, 3, 5] and [5, 6, 2].
  const std::vector<int32_t> tokens = {3, 3, 5, 5, 6, 2};
  auto out = RunGraph(g, {{"x", Tensor::FromValues<int32_t>({2, 3}, absl::MakeConstSpan(tokens))}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(out->at("y").values<float>(), ElementsAre(0, 2, 0, 0, 1, 0, 1, 0));
}

TEST(TfIdfVectorizerTest, SkipsFollowTheSpecsExample) {
  // ONNX's example: in [94, 17, 36, 12, 28] with 2 skips the 2-grams are
  // (94, 12) and (17, 28); with 0 skips, (94, 17), (17, 36), ...
  TfIdf t;
  t.min_gram_length = 2;
  t.ngram_counts = {0, 0};
  t.ngram_indexes = {0, 1, 2};
  t.pool_int64s = {94, 12, 17, 28, 94, 17};
  t.max_skip_count = 2;
  EXPECT_THAT(Vectorize(t, {5}, {94, 17, 36, 12, 28}), ElementsAre(1, 1, 1));
  t.max_skip_count = 1;
  EXPECT_THAT(Vectorize(t, {5}, {94, 17, 36, 12, 28}), ElementsAre(0, 0, 1));
  // A skip far longer than the row is fine: nothing more matches.
  t.max_skip_count = 1000000;
  EXPECT_THAT(Vectorize(t, {5}, {94, 17, 36, 12, 28}), ElementsAre(1, 1, 1));
}

TEST(TfIdfVectorizerTest, UnigramsAreCountedOnceWhateverTheSkips) {
  TfIdf t;
  t.max_skip_count = 3;
  // 2 three times; (5, 6) at skip 0 and skip 2 (positions 3 and 6).
  EXPECT_THAT(Vectorize(t, {7}, {2, 2, 2, 5, 6, 9, 6}), ElementsAre(3, 0, 2, 0));
  // min_gram_length 2 drops the unigrams.
  t.min_gram_length = 2;
  EXPECT_THAT(Vectorize(t, {7}, {2, 2, 2, 5, 6, 9, 6}), ElementsAre(0, 0, 2, 0));
}

TEST(TfIdfVectorizerTest, IdfAndTfIdfUseTheWeightOfEachColumn) {
  TfIdf t;
  // Two n-grams share column 1; column 2 has no n-gram and stays 0.
  t.ngram_indexes = {0, 1, 1, 3};
  t.weights = {0.5f, 2.0f, 7.0f, 4.0f};
  const std::vector<int64_t> tokens = {2, 2, 3, 5, 6, 7, 8};
  t.mode = "TF";
  EXPECT_THAT(Vectorize(t, {7}, tokens), ElementsAre(2, 2, 0, 1));
  t.mode = "IDF";
  EXPECT_THAT(Vectorize(t, {7}, tokens), ElementsAre(0.5f, 2.0f, 0, 4.0f));
  t.mode = "TFIDF";
  EXPECT_THAT(Vectorize(t, {7}, tokens), ElementsAre(1.0f, 4.0f, 0, 4.0f));
  t.weights.clear();
  t.mode = "IDF";
  EXPECT_THAT(Vectorize(t, {7}, tokens), ElementsAre(1, 1, 0, 1));
  t.mode = "TFIDF";
  EXPECT_THAT(Vectorize(t, {7}, tokens), ElementsAre(2, 2, 0, 1));
}

TEST(TfIdfVectorizerTest, ALargePoolCountsEveryNgram) {
  // 300 2-grams (i, i + 1) and 300 3-grams (i, i + 1, i + 2): the trie grows
  // well past its first allocation while it is built.
  TfIdf t;
  t.min_gram_length = 2;
  t.max_gram_length = 3;
  t.ngram_counts = {0, 0, 600};
  t.pool_int64s.clear();
  t.ngram_indexes.clear();
  for (int64_t i = 0; i < 300; ++i) {
    t.pool_int64s.insert(t.pool_int64s.end(), {i, i + 1});
    t.ngram_indexes.push_back(i);
  }
  for (int64_t i = 0; i < 300; ++i) {
    t.pool_int64s.insert(t.pool_int64s.end(), {i, i + 1, i + 2});
    t.ngram_indexes.push_back(300 + i);
  }
  std::vector<int64_t> tokens(302);
  for (int64_t i = 0; i < 302; ++i) tokens[i] = i;
  EXPECT_THAT(Vectorize(t, {302}, tokens), ElementsAreArray(std::vector<float>(600, 1.0f)));
}

// Creating the executor must fail with `code`, naming the node and `why`.
void ExpectRefusedAtCreate(const TfIdf& t, const std::string& why,
                           absl::StatusCode code = absl::StatusCode::kInvalidArgument) {
  SCOPED_TRACE(why);
  GraphBuilder g = Graph(t, kInt64, {4});
  auto model = g.Build(/*check=*/false);
  ASSERT_TRUE(model.ok()) << model.status();
  auto executor = Executor::Create(*model);
  ASSERT_FALSE(executor.ok());
  EXPECT_EQ(executor.status().code(), code) << executor.status();
  EXPECT_THAT(std::string(executor.status().message()),
              AllOf(HasSubstr("node 'TfIdfVectorizer_1' (TfIdfVectorizer)"), HasSubstr(why)))
      << executor.status();
}

TEST(TfIdfVectorizerTest, BadAttributesAreRefusedAtCreate) {
  {
    TfIdf t;
    t.mode = "BM25";
    ExpectRefusedAtCreate(t, "mode must be TF, IDF or TFIDF");
  }
  {
    TfIdf t;
    t.min_gram_length = 0;
    ExpectRefusedAtCreate(t, "must satisfy 1 <= min <= max");
  }
  {
    TfIdf t;
    t.min_gram_length = 3;
    ExpectRefusedAtCreate(t, "must satisfy 1 <= min <= max");
  }
  {
    TfIdf t;
    t.max_skip_count = -1;
    ExpectRefusedAtCreate(t, "max_skip_count -1 is out of range");
  }
  {
    TfIdf t;
    t.max_skip_count = int64_t{1} << 40;
    ExpectRefusedAtCreate(t, "is out of range");
  }
  {
    TfIdf t;
    t.ngram_counts = {0, 4, 2};
    ExpectRefusedAtCreate(t, "ngram_counts must be non-decreasing");
  }
  {
    TfIdf t;
    t.ngram_counts = {0, 7};
    ExpectRefusedAtCreate(t, "ngram_counts must be non-decreasing and at most the pool's size");
  }
  {
    TfIdf t;
    t.ngram_counts = {1, 2};
    ExpectRefusedAtCreate(t, "ngram_counts must start at 0");
  }
  {
    TfIdf t;
    t.ngram_counts = {0, 1};  // the 2-grams would take 5 values
    ExpectRefusedAtCreate(t, "not a multiple of 2");
  }
  {
    TfIdf t;
    t.ngram_indexes = {0, 1, 2};
    ExpectRefusedAtCreate(t, "more n-grams than the 3 ngram_indexes");
  }
  {
    TfIdf t;
    t.ngram_indexes = {0, 1, 2, 3, 4};
    ExpectRefusedAtCreate(t, "the pool has 4 n-grams but 5 ngram_indexes values");
  }
  {
    TfIdf t;
    t.ngram_indexes = {0, -1, 2, 3};
    ExpectRefusedAtCreate(t, "ngram_indexes value -1 is out of range");
  }
  {
    // Would make every row an output of 2^62 floats.
    TfIdf t;
    t.ngram_indexes = {0, 1, 2, int64_t{1} << 62};
    ExpectRefusedAtCreate(t, "is out of range");
  }
  {
    TfIdf t;
    t.weights = {1.0f, 2.0f};
    ExpectRefusedAtCreate(t, "weights has 2 values, fewer than the 4 output columns");
  }
  {
    TfIdf t;
    t.pool_strings = true;
    ExpectRefusedAtCreate(t, "pool_strings is not supported", absl::StatusCode::kUnimplemented);
  }
}

TEST(TfIdfVectorizerTest, BadInputsAreInvalidArgument) {
  TfIdf t;
  {
    GraphBuilder g = Graph(t, kInt64, {1, 2, 2});
    const std::vector<int64_t> tokens = {2, 3, 5, 6};
    auto out = RunGraph(
        g, {{"x", Tensor::FromValues<int64_t>({1, 2, 2}, absl::MakeConstSpan(tokens))}});
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << out.status();
    EXPECT_THAT(std::string(out.status().message()), HasSubstr("must be [C] or [N, C]"));
  }
  {
    GraphBuilder g = Graph(t, kFloat, {2});
    const std::vector<float> tokens = {2, 3};
    auto out = RunGraph(g, {{"x", Tensor::FromValues<float>({2}, absl::MakeConstSpan(tokens))}});
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << out.status();
    EXPECT_THAT(std::string(out.status().message()), HasSubstr("must be int64 or int32"));
  }
  // No rows: a [0, 4] output.
  std::vector<int64_t> shape;
  EXPECT_THAT(Vectorize(t, {0, 3}, {}, &shape), ElementsAreArray(std::vector<float>{}));
  EXPECT_THAT(shape, ElementsAre(0, 4));
}

}  // namespace
}  // namespace qat
