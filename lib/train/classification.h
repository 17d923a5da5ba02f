// The classification rule that every accuracy in libqat uses (Evaluate,
// Trainer::Evaluate): the predicted class of a row of logits is the index
// of its largest value, the first one on ties.
#ifndef QAT_LIB_TRAIN_CLASSIFICATION_H_
#define QAT_LIB_TRAIN_CLASSIFICATION_H_

#include <algorithm>
#include <cstdint>

namespace qat {

inline int64_t PredictedClass(const float* row, int64_t classes) {
  return std::max_element(row, row + classes) - row;
}

// How many of the `n` rows of `logits` ([n, classes], row-major) predict
// their label.
inline int64_t CountCorrect(const float* logits, int64_t n, int64_t classes,
                            const int64_t* labels) {
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    correct += PredictedClass(logits + i * classes, classes) == labels[i];
  }
  return correct;
}

}  // namespace qat

#endif  // QAT_LIB_TRAIN_CLASSIFICATION_H_
