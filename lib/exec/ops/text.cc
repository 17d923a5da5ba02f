// Text ops: TfIdfVectorizer (opset 9), over integer token ids (the string
// pool is not supported: libqat has no string tensors).
//
// The pool holds n-grams grouped by length: ngram_counts[i] is where the
// (i+1)-grams start in pool_int64s, and the k-th n-gram of the pool counts
// into output column ngram_indexes[k].  In a row of C tokens, an n-gram with
// skip s reads the tokens at start, start + (s+1), ..., start + (n-1)(s+1);
// every skip in [0, max_skip_count] is tried for n >= 2, and unigrams are
// counted once (skips do not change them).  The output is float:
//   TF:    the count;
//   IDF:   weights[j] (1 without weights) where the count is > 0, else 0;
//   TFIDF: the count times weights[j] (the count without weights);
// with j the output column, as in ONNX's reference and ONNX Runtime.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_join.h"
#include "exec/ops/op_util.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

enum class TfIdfMode { kTf, kIdf, kTfIdf };

// Skips beyond this are taken as a broken attribute (a row is never that
// long), not as a loop to run.
constexpr int64_t kMaxSkipCount = std::numeric_limits<int32_t>::max();

// The pool's n-grams (of the lengths in [min_gram_length, max_gram_length])
// as a trie over token ids; node 0 is the root.
class NgramTrie {
 public:
  NgramTrie() : nodes_(1) {}

  // Adds an n-gram that counts into `column`; a repeated n-gram counts into
  // the column of its last occurrence, as in ONNX's reference.
  void Add(absl::Span<const int64_t> tokens, int64_t column) {
    int64_t node = 0;
    for (const int64_t token : tokens) {
      const auto [it, inserted] =
          nodes_[node].next.emplace(token, static_cast<int64_t>(nodes_.size()));
      node = it->second;
      // After the read: growing nodes_ may move the map `it` points into.
      if (inserted) nodes_.emplace_back();
    }
    nodes_[node].column = column;
    depth_ = std::max(depth_, static_cast<int64_t>(tokens.size()));
  }

  // The child of `node` for `token`, or -1.
  int64_t Next(int64_t node, int64_t token) const {
    const auto it = nodes_[node].next.find(token);
    return it == nodes_[node].next.end() ? -1 : it->second;
  }
  // The output column of the n-gram that ends at `node`, or -1.
  int64_t Column(int64_t node) const { return nodes_[node].column; }
  // The longest n-gram's length.
  int64_t depth() const { return depth_; }

 private:
  struct Node {
    std::unordered_map<int64_t, int64_t> next;
    int64_t column = -1;
  };
  std::vector<Node> nodes_;
  int64_t depth_ = 0;
};

struct TfIdfParams {
  TfIdfMode mode = TfIdfMode::kTf;
  int64_t min_gram_length = 1;
  int64_t max_skip_count = 0;
  int64_t output_size = 0;
  std::vector<float> weights;  // by output column; empty for none
  NgramTrie trie;
};

absl::StatusOr<TfIdfParams> ReadTfIdfParams(const NodeView& node) {
  TfIdfParams p;
  if (node.HasAttr("pool_strings")) {
    return absl::UnimplementedError("pool_strings is not supported (libqat has no strings)");
  }
  const std::string mode = node.GetString("mode", "");
  if (mode == "TF") {
    p.mode = TfIdfMode::kTf;
  } else if (mode == "IDF") {
    p.mode = TfIdfMode::kIdf;
  } else if (mode == "TFIDF") {
    p.mode = TfIdfMode::kTfIdf;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("mode must be TF, IDF or TFIDF, got '", mode, "'"));
  }
  p.min_gram_length = node.GetInt("min_gram_length", 0);
  const int64_t max_gram_length = node.GetInt("max_gram_length", 0);
  if (p.min_gram_length < 1 || max_gram_length < p.min_gram_length) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_gram_length ", p.min_gram_length, " and max_gram_length ",
                     max_gram_length, " must satisfy 1 <= min <= max"));
  }
  p.max_skip_count = node.GetInt("max_skip_count", 0);
  if (p.max_skip_count < 0 || p.max_skip_count > kMaxSkipCount) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_skip_count ", p.max_skip_count, " is out of range [0, ", kMaxSkipCount, "]"));
  }

  const std::vector<int64_t> pool = node.GetInts("pool_int64s");
  const std::vector<int64_t> counts = node.GetInts("ngram_counts");
  const std::vector<int64_t> indexes = node.GetInts("ngram_indexes");
  const int64_t pool_size = static_cast<int64_t>(pool.size());
  if (indexes.empty()) {
    return absl::InvalidArgumentError("ngram_indexes is empty");
  }
  if (counts.empty() || counts[0] != 0) {
    return absl::InvalidArgumentError("ngram_counts must start at 0");
  }
  // The largest column the output may have: more would be an output of over
  // kMaxComputedTensorBytes even for one row.
  const int64_t max_column = kMaxComputedTensorBytes / static_cast<int64_t>(sizeof(float));
  for (const int64_t index : indexes) {
    if (index < 0 || index >= max_column) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ngram_indexes value ", index, " is out of range [0, ", max_column, ")"));
    }
    p.output_size = std::max(p.output_size, index + 1);
  }

  // Walks the groups of 1-grams, 2-grams, ...: each must hold whole n-grams,
  // and together they must hold one n-gram per ngram_indexes value.
  int64_t ngram = 0;  // index into ngram_indexes of the group's first n-gram
  for (size_t i = 0; i < counts.size(); ++i) {
    const int64_t n = static_cast<int64_t>(i) + 1;
    const int64_t begin = counts[i];
    const int64_t end = i + 1 < counts.size() ? counts[i + 1] : pool_size;
    if (end < begin || end > pool_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ngram_counts must be non-decreasing and at most the pool's size ", pool_size,
          ", got ", absl::StrJoin(counts, ",")));
    }
    if ((end - begin) % n != 0) {
      return absl::InvalidArgumentError(absl::StrCat("the ", n, "-grams of pool_int64s take ",
                                                     end - begin, " values, not a multiple of ",
                                                     n));
    }
    const int64_t group = (end - begin) / n;
    if (ngram + group > static_cast<int64_t>(indexes.size())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the pool has more n-grams than the ", indexes.size(), " ngram_indexes values"));
    }
    for (int64_t k = 0; k < group; ++k, ++ngram) {
      if (n < p.min_gram_length || n > max_gram_length) continue;
      p.trie.Add(absl::MakeConstSpan(pool).subspan(begin + k * n, n), indexes[ngram]);
    }
  }
  if (ngram != static_cast<int64_t>(indexes.size())) {
    return absl::InvalidArgumentError(absl::StrCat("the pool has ", ngram, " n-grams but ",
                                                   indexes.size(), " ngram_indexes values"));
  }

  p.weights = node.GetFloats("weights");
  if (!p.weights.empty() && static_cast<int64_t>(p.weights.size()) < p.output_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights has ", p.weights.size(), " values, fewer than the ", p.output_size,
        " output columns"));
  }
  return p;
}

// Adds the counts of row `x` (C tokens) into `counts` (output_size values).
void CountRow(const TfIdfParams& p, const int64_t* x, int64_t c, int64_t* counts) {
  const NgramTrie& trie = p.trie;
  // A skip of s needs s + 2 <= C tokens for a 2-gram; skip 0 covers unigrams.
  const int64_t last_skip = std::min(p.max_skip_count, std::max<int64_t>(c - 2, 0));
  for (int64_t skip = 0; skip <= last_skip; ++skip) {
    if (skip > 0 && trie.depth() < 2) break;
    for (int64_t start = 0; start < c; ++start) {
      int64_t node = 0;
      int64_t n = 1;
      for (int64_t pos = start; pos < c; pos += skip + 1, ++n) {
        node = trie.Next(node, x[pos]);
        if (node < 0) break;
        const int64_t column = trie.Column(node);
        if (column >= 0 && n >= p.min_gram_length && (n > 1 || skip == 0)) ++counts[column];
      }
    }
  }
}

}  // namespace

absl::StatusOr<Kernel> MakeTfIdfVectorizer(const NodeView& node) {
  QAT_ASSIGN_OR_RETURN(TfIdfParams parsed, ReadTfIdfParams(node));
  auto params = std::make_shared<const TfIdfParams>(std::move(parsed));
  return Kernel([params](KernelContext& ctx) -> absl::Status {
    const TfIdfParams& p = *params;
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    if (x.rank() != 1 && x.rank() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("the input must be [C] or [N, C], got ", ShapeToString(x.shape())));
    }
    QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> tokens, ReadIndices(x, "the input"));
    const int64_t rows = x.rank() == 2 ? x.dim(0) : 1;
    const int64_t c = x.dim(x.rank() - 1);
    std::vector<int64_t> shape = {p.output_size};
    if (x.rank() == 2) shape.insert(shape.begin(), rows);
    QAT_RETURN_IF_ERROR(CheckComputedShape(DataType::kFloat32, shape, "the output"));
    Tensor& out = ctx.output(0);
    out.Resize(DataType::kFloat32, shape);
    float* y = out.data<float>();
    ForEachIndex(ctx.pool, rows, [&](int64_t row) {
      std::vector<int64_t> counts(static_cast<size_t>(p.output_size), 0);
      CountRow(p, tokens.data() + row * c, c, counts.data());
      float* y_row = y + row * p.output_size;
      for (int64_t j = 0; j < p.output_size; ++j) {
        const float count = static_cast<float>(counts[j]);
        const float weight = p.weights.empty() ? 1.0f : p.weights[j];
        switch (p.mode) {
          case TfIdfMode::kTf: y_row[j] = count; break;
          case TfIdfMode::kIdf: y_row[j] = counts[j] > 0 ? weight : 0.0f; break;
          case TfIdfMode::kTfIdf: y_row[j] = count * weight; break;
        }
      }
    });
    return absl::OkStatus();
  });
}

}  // namespace exec
}  // namespace qat
