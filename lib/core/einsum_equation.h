// Einsum equations: parsing ("bij,bjk->bik", "...ii->...i", "ij,jk") and
// resolving them against the operands' ranks into integer labels.
//
// Shared by the executor's Einsum kernel and Einsum's gradient rule, so that
// both read an equation the same way.  The rules are numpy's: letters a-z and
// A-Z name axes, "..." stands for the leading axes that a term does not name
// (broadcast right-aligned across the operands), spaces are ignored; without
// "->" the output is the ellipsis followed by the letters that occur once,
// in ASCII order.  Errors are InvalidArgument and quote the equation.
#ifndef QAT_LIB_CORE_EINSUM_EQUATION_H_
#define QAT_LIB_CORE_EINSUM_EQUATION_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace qat {

// The terms of an equation, each as its letters with '.' for the ellipsis.
struct EinsumTerms {
  std::vector<std::string> inputs;
  std::string output;
};

// Labels: 'a'..'z' are 0..25, 'A'..'Z' 26..51, the axes of the ellipsis
// kEinsumEllipsisLabel + 0, 1, ... from the leftmost.
inline constexpr int kEinsumLetters = 52;
inline constexpr int kEinsumEllipsisLabel = kEinsumLetters;

inline int EinsumLetterLabel(char c) {
  if (c >= 'a' && c <= 'z') return c - 'a';
  if (c >= 'A' && c <= 'Z') return 26 + (c - 'A');
  return -1;
}
inline char EinsumLabelLetter(int label) {
  return static_cast<char>(label < 26 ? 'a' + label : 'A' + (label - 26));
}

inline absl::StatusOr<EinsumTerms> ParseEinsum(absl::string_view equation,
                                               size_t num_inputs) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("Einsum equation '", equation, "': ", why));
  };
  std::string compact;
  for (char c : equation) {
    if (c != ' ') compact.push_back(c);
  }
  const size_t arrow = compact.find("->");
  const std::string lhs = compact.substr(0, arrow);
  EinsumTerms terms;
  // One term: letters and at most one "..." (kept as '.').
  auto parse_term = [&](absl::string_view text, std::string* out) -> absl::Status {
    for (size_t i = 0; i < text.size(); ++i) {
      if (text.substr(i, 3) == "...") {
        if (out->find('.') != std::string::npos) return bad("two ellipses in one term");
        out->push_back('.');
        i += 2;
      } else if (EinsumLetterLabel(text[i]) >= 0) {
        out->push_back(text[i]);
      } else {
        return bad(absl::StrCat("unexpected character '", text.substr(i, 1), "'"));
      }
    }
    return absl::OkStatus();
  };
  size_t begin = 0;
  while (true) {
    const size_t comma = lhs.find(',', begin);
    terms.inputs.emplace_back();
    absl::Status s = parse_term(
        absl::string_view(lhs).substr(begin, comma == std::string::npos ? comma : comma - begin),
        &terms.inputs.back());
    if (!s.ok()) return s;
    if (comma == std::string::npos) break;
    begin = comma + 1;
  }
  if (terms.inputs.size() != num_inputs) {
    return bad(absl::StrCat("has ", terms.inputs.size(), " terms for ", num_inputs, " inputs"));
  }
  if (arrow != std::string::npos) {
    absl::Status s = parse_term(absl::string_view(compact).substr(arrow + 2), &terms.output);
    if (!s.ok()) return s;
    for (size_t i = 0; i < terms.output.size(); ++i) {
      const char c = terms.output[i];
      if (terms.output.find(c, i + 1) != std::string::npos) {
        return bad(absl::StrCat("'", std::string(1, c), "' twice in the output"));
      }
      if (c != '.' && lhs.find(c) == std::string::npos) {
        return bad(absl::StrCat("output label '", std::string(1, c), "' is in no input"));
      }
    }
  } else {
    if (lhs.find('.') != std::string::npos) terms.output.push_back('.');
    std::string letters;
    for (char c : lhs) {
      if (EinsumLetterLabel(c) >= 0 && std::count(lhs.begin(), lhs.end(), c) == 1) {
        letters.push_back(c);
      }
    }
    std::sort(letters.begin(), letters.end());
    terms.output += letters;
  }
  return terms;
}

// An equation resolved against its operands' ranks: each operand's and the
// output's labels, axis by axis.
struct EinsumLabels {
  std::vector<std::vector<int>> inputs;
  std::vector<int> output;
  int ellipsis_rank = 0;  // axes the ellipsis stands for in the output
};

inline absl::StatusOr<EinsumLabels> ResolveEinsum(const EinsumTerms& terms,
                                                  const std::vector<int64_t>& ranks) {
  EinsumLabels labels;
  std::vector<int64_t> ellipsis(terms.inputs.size(), 0);
  for (size_t i = 0; i < terms.inputs.size(); ++i) {
    const std::string& t = terms.inputs[i];
    const bool has_ellipsis = t.find('.') != std::string::npos;
    const int64_t named = static_cast<int64_t>(t.size()) - (has_ellipsis ? 1 : 0);
    if (has_ellipsis ? ranks[i] < named : ranks[i] != named) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Einsum term '", t, "' does not fit input ", i, " of rank ", ranks[i]));
    }
    ellipsis[i] = ranks[i] - named;
    labels.ellipsis_rank = std::max<int>(labels.ellipsis_rank, static_cast<int>(ellipsis[i]));
  }
  // The ellipsis axes of every term, right-aligned on the longest.
  auto expand = [&](const std::string& t, int64_t count, std::vector<int>* out) {
    for (char c : t) {
      if (c != '.') {
        out->push_back(EinsumLetterLabel(c));
        continue;
      }
      for (int64_t e = labels.ellipsis_rank - count; e < labels.ellipsis_rank; ++e) {
        out->push_back(kEinsumEllipsisLabel + static_cast<int>(e));
      }
    }
  };
  labels.inputs.resize(terms.inputs.size());
  for (size_t i = 0; i < terms.inputs.size(); ++i) {
    expand(terms.inputs[i], ellipsis[i], &labels.inputs[i]);
  }
  if (labels.ellipsis_rank > 0 && terms.output.find('.') == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Einsum output '", terms.output, "' has no '...' for the ", labels.ellipsis_rank,
        " axes the inputs' ellipsis stands for"));
  }
  expand(terms.output, labels.ellipsis_rank, &labels.output);
  return labels;
}

}  // namespace qat

#endif  // QAT_LIB_CORE_EINSUM_EQUATION_H_
