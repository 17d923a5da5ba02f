#include "exec/kernel.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace qat {
namespace exec {

const onnx::AttributeProto* NodeView::Find(const std::string& name) const {
  for (const auto& attr : proto_.attribute()) {
    if (attr.name() == name) return &attr;
  }
  return nullptr;
}

int64_t NodeView::GetInt(const std::string& name, int64_t fallback) const {
  const auto* attr = Find(name);
  return attr != nullptr ? attr->i() : fallback;
}

float NodeView::GetFloat(const std::string& name, float fallback) const {
  const auto* attr = Find(name);
  return attr != nullptr ? attr->f() : fallback;
}

std::string NodeView::GetString(const std::string& name,
                                const std::string& fallback) const {
  const auto* attr = Find(name);
  return attr != nullptr ? attr->s() : fallback;
}

std::vector<int64_t> NodeView::GetInts(const std::string& name) const {
  const auto* attr = Find(name);
  if (attr == nullptr) return {};
  return std::vector<int64_t>(attr->ints().begin(), attr->ints().end());
}

absl::StatusOr<std::unique_ptr<Subgraph>> NodeView::CompileSubgraph(
    const std::string& name) const {
  const auto* attr = Find(name);
  if (attr == nullptr || attr->type() != onnx::AttributeProto::GRAPH || !attr->has_g()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the graph attribute '", name, "' is missing"));
  }
  if (compiler_ == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the graph attribute '", name, "' cannot be compiled here"));
  }
  auto graph = compiler_->Compile(attr->g());
  if (!graph.ok()) {
    return absl::Status(graph.status().code(), absl::StrCat("in its attribute '", name,
                                                            "': ", graph.status().message()));
  }
  return graph;
}

std::vector<float> NodeView::GetFloats(const std::string& name) const {
  const auto* attr = Find(name);
  if (attr == nullptr) return {};
  return std::vector<float>(attr->floats().begin(), attr->floats().end());
}

void ForwardInput(KernelContext& ctx, int i, std::vector<int64_t> shape, int o) {
  // A spare output (past the node's own) lives only as long as ctx.
  const bool planned = o < static_cast<int>(ctx.outputs.size());
  Tensor& out = ctx.output(o);
  if (Tensor* x = ctx.takeable_input(i); x != nullptr) {
    std::swap(*x, out);  // the input is dead after this node
    if (planned && ctx.forwarded != nullptr) ctx.forwarded->emplace_back(x, &out);
    out.Reshape(std::move(shape));
    return;
  }
  const Tensor& x = ctx.input(i);
  out.Resize(x.dtype(), std::move(shape));
  if (x.num_bytes() > 0) std::memcpy(out.raw_data(), x.raw_data(), x.num_bytes());
}

}  // namespace exec
}  // namespace qat
