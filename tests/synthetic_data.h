// Small synthetic classification data for the training and stages tests.
#ifndef QAT_TESTS_SYNTHETIC_DATA_H_
#define QAT_TESTS_SYNTHETIC_DATA_H_

#include <cstdint>
#include <random>
#include <utility>

#include "qat/dataset.h"
#include "qat/model_zoo.h"
#include "qat/tensor.h"

namespace qat {

// Three Gaussian blobs in 8 dimensions: example i has class i % 3.
inline Dataset Blobs(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.5f);
  Tensor x(DataType::kFloat32, {n, 8});
  Tensor y(DataType::kInt64, {n});
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = i % 3;
    y.data<int64_t>()[i] = c;
    for (int64_t j = 0; j < 8; ++j) {
      x.data<float>()[i * 8 + j] = (j % 3 == c ? 1.5f : -0.5f) + noise(rng);
    }
  }
  return *Dataset::Create(std::move(x), std::move(y));
}

// The 8-16-3 MLP that classifies Blobs.
inline Model BlobsMlp(uint64_t seed = 3) {
  MlpSpec spec;
  spec.inputs = 8;
  spec.hidden = {16};
  spec.outputs = 3;
  spec.seed = seed;
  return *MakeMlp(spec);
}

}  // namespace qat

#endif  // QAT_TESTS_SYNTHETIC_DATA_H_
