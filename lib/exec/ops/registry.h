// Looks ops up in the manifest (lib/ops/op_list.h).
#ifndef QAT_LIB_EXEC_OPS_REGISTRY_H_
#define QAT_LIB_EXEC_OPS_REGISTRY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "exec/kernel.h"

namespace qat {
namespace exec {

struct OpEntry {
  const char* domain;  // "" for the default ONNX domain
  const char* op_type;
  int64_t since_opset;
  KernelFactory factory;
};

// The entry for op_type in domain ("ai.onnx" counts as "") at this opset
// version, or nullptr when it is not supported.
const OpEntry* FindOp(const std::string& domain, const std::string& op_type,
                      int64_t opset);

// Every entry, in manifest order.
const std::vector<OpEntry>& AllOps();

}  // namespace exec
}  // namespace qat

#endif  // QAT_LIB_EXEC_OPS_REGISTRY_H_
