// A per-node exception to the quantizer's bit widths: keep a node in float,
// or give its weight and activations other widths than the rest (the LSQ
// paper keeps the first and last layers at 8 bits).  QdqInsertionConfig
// (qat/qdq_insertion.h) holds them by node name, `qat quantize --bits
// NODE=N` sets them, and a calibration table's "node_overrides" object
// carries them (docs/formats.md), e.g. from a sensitivity analysis.
#ifndef QAT_NODE_QUANT_OVERRIDE_H_
#define QAT_NODE_QUANT_OVERRIDE_H_

namespace qat {

struct NodeQuantOverride {
  bool keep_float = false;  // leave the node unquantized
  int weight_bits = 0;      // 2..8; 0: the configuration's
  // 2..8; 0: the configuration's.  A tensor between two nodes takes the
  // wider of their activation widths.
  int activation_bits = 0;

  bool operator==(const NodeQuantOverride& o) const {
    return keep_float == o.keep_float && weight_bits == o.weight_bits &&
           activation_bits == o.activation_bits;
  }
};

}  // namespace qat

#endif  // QAT_NODE_QUANT_OVERRIDE_H_
