// What the insert_qdq pass quantizes and how: the settings that
// qat::QuantizeOptions (qat/quantize.h) extends for the quantize stage.
#ifndef QAT_QDQ_INSERTION_H_
#define QAT_QDQ_INSERTION_H_

#include <string>
#include <vector>

#include "qat/quant_params.h"

namespace qat {

struct QdqInsertionConfig {
  std::vector<std::string> op_types = {"MatMul", "Gemm", "Conv"};
  // Node names to skip; when `include_nodes` is not empty, only those.
  std::vector<std::string> exclude_nodes;
  std::vector<std::string> include_nodes;
  QuantType activation_type = QuantType::kUInt8;  // or kInt8
  bool symmetric_activations = false;
  int weight_bits = 8;  // 8 or 4
  bool per_channel = false;
  bool reduce_range = false;  // weights in [-64, 64]
  bool weights_as_int8 = false;
};

}  // namespace qat

#endif  // QAT_QDQ_INSERTION_H_
