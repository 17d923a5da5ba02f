#include "exec/ops/registry.h"

namespace qat {
namespace exec {

#define QAT_OP(domain, op_type, since, factory) \
  absl::StatusOr<Kernel> factory(const NodeView& node);
#include "exec/ops/op_list.h"
#undef QAT_OP

const std::vector<OpEntry>& AllOps() {
  static const std::vector<OpEntry>* const ops = new std::vector<OpEntry>{
#define QAT_OP(domain, op_type, since, factory) {domain, op_type, since, &factory},
#include "exec/ops/op_list.h"
#undef QAT_OP
  };
  return *ops;
}

const OpEntry* FindOp(const std::string& domain, const std::string& op_type,
                      int64_t opset) {
  const std::string& d = domain == "ai.onnx" ? std::string() : domain;
  for (const OpEntry& entry : AllOps()) {
    if (d == entry.domain && op_type == entry.op_type &&
        opset >= entry.since_opset) {
      return &entry;
    }
  }
  return nullptr;
}

}  // namespace exec
}  // namespace qat
