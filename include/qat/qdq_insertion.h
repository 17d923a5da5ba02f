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
  // > 0: 4-bit weights of MatMul and Gemm quantized per block of this many
  // along the reduction axis (opset 21's block_size; the quantize stage
  // raises the model to opset 21, and with weights_as_int8 stores them as
  // packed INT4).  Ranges are the blocks' min/max.  0: off.
  int64_t block_size = 0;
};

}  // namespace qat

#endif  // QAT_QDQ_INSERTION_H_
