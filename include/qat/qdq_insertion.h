// What the insert_qdq pass quantizes and how: the settings that
// qat::QuantizeOptions (qat/quantize.h) extends for the quantize stage.
//
// Bit widths (issue 15): weights and activations each take 2 to 8 bits,
// independently.  Values are stored in int8 or uint8; a grid narrower than
// its storage type is QuantizeLinear -> Clip(quant_min, quant_max) ->
// DequantizeLinear at opset 13, which ONNX Runtime runs and which
// fuse_qdq_to_fake_quant reads back as FakeQuant's quant_min/quant_max.
// Ranges come from QuantRangeForBits (qat/quant_params.h); at 8 bits and
// at 4-bit weights with the defaults they are exactly what they always were.
#ifndef QAT_QDQ_INSERTION_H_
#define QAT_QDQ_INSERTION_H_

#include <map>
#include <string>
#include <vector>

#include "qat/node_quant_override.h"
#include "qat/quant_params.h"

namespace qat {

inline constexpr int64_t kEmbeddingBlockSize = 32;

struct QdqInsertionConfig {
  std::vector<std::string> op_types = {"MatMul", "Gemm", "Conv"};
  // Node names to skip; when `include_nodes` is not empty, only those.
  std::vector<std::string> exclude_nodes;
  std::vector<std::string> include_nodes;
  // Activations: the storage type gives the signedness (uint8 or int8).
  QuantType activation_type = QuantType::kUInt8;  // or kInt8
  bool symmetric_activations = false;
  int activation_bits = 8;  // 2..8
  QuantRangeMode activation_range = QuantRangeMode::kAuto;
  // Weights: signed (int8 storage) symmetric by default.
  int weight_bits = 8;  // 2..8
  bool weight_signed = true;      // false: uint8 storage
  bool symmetric_weights = true;  // false: affine, with a zero point
  QuantRangeMode weight_range = QuantRangeMode::kAuto;
  bool per_channel = false;
  bool reduce_range = false;  // weights in [-64, 64]
  bool weights_as_int8 = false;
  // Per-node exceptions by node name (qat/node_quant_override.h).  A
  // calibration table's node_overrides apply too; these win for a node that
  // both name.  A name the model does not have is an error.
  std::map<std::string, NodeQuantOverride> node_overrides;
  // > 0: 4-bit weights of MatMul and Gemm quantized per block of this many
  // along the reduction axis (opset 21's block_size; the quantize stage
  // raises the model to opset 21, and with weights_as_int8 stores them as
  // packed INT4).  Ranges are the blocks' min/max.  0: off.
  int64_t block_size = 0;
  // Block-wise weights: each block's range is the one whose FakeQuant
  // error on the block's values is least (MSE; candidates k/100 of the
  // min/max range) instead of its min/max.
  bool mse_block_weights = false;
  // Block-wise weights: each block's scale snapped to a uint8 code times a
  // power-of-two step per output channel (docs/formats.md), so that the
  // export stores the scales in a quarter of the bytes, exactly.  The zero
  // points of affine weights are recomputed for the snapped scales.
  bool uint8_block_scales = false;
  // 4: the tables of Gather embeddings (axis 0, a rank-2 float initializer)
  // as 4-bit weights, per block along the embedding dimension (axis 1) of
  // block_size, or kEmbeddingBlockSize when block_size is 0; opset 21 (the
  // quantize stage raises the model to it), packed INT4 with
  // weights_as_int8.  The Gather's output is not quantized.  0: off.
  int embedding_bits = 0;
};

}  // namespace qat

#endif  // QAT_QDQ_INSERTION_H_
