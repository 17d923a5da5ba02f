#include "graph_dot.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "onnx/onnx_pb.h"
#include "qat/file_io.h"

namespace qat_cli {
namespace {

std::string Html(const std::string& text) {
  return absl::StrReplaceAll(text, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"},
                                    {"\"", "&quot;"}});
}

std::string Quoted(const std::string& text) {
  return absl::StrCat("\"", absl::StrReplaceAll(text, {{"\\", "\\\\"}, {"\"", "\\\""}}), "\"");
}

std::string Dims(const google::protobuf::RepeatedField<int64_t>& dims) {
  return absl::StrJoin(dims, "x");
}

std::string ShapeOf(const onnx::ValueInfoProto& info) {
  if (!info.type().has_tensor_type() || !info.type().tensor_type().has_shape()) return "";
  std::vector<std::string> dims;
  for (const auto& d : info.type().tensor_type().shape().dim()) {
    dims.push_back(d.has_dim_value() ? absl::StrCat(d.dim_value())
                                     : d.dim_param().empty() ? "?" : d.dim_param());
  }
  return absl::StrCat("[", absl::StrJoin(dims, ","), "]");
}

// The value of a one-element tensor, or "" when it is not one.
std::string ScalarText(const onnx::TensorProto& t) {
  int64_t n = 1;
  for (int64_t d : t.dims()) n *= d;
  if (n != 1) return "";
  const std::string& raw = t.raw_data();
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT: {
      float v = t.float_data_size() ? t.float_data(0) : 0.0f;
      if (raw.size() == sizeof v) std::memcpy(&v, raw.data(), sizeof v);
      return absl::StrFormat("%.4g", v);
    }
    case onnx::TensorProto::INT8:
      return absl::StrCat(raw.size() == 1 ? static_cast<int8_t>(raw[0])
                                          : t.int32_data_size() ? t.int32_data(0) : 0);
    case onnx::TensorProto::UINT8:
      return absl::StrCat(raw.size() == 1 ? static_cast<uint8_t>(raw[0])
                                          : t.int32_data_size() ? t.int32_data(0) : 0);
    case onnx::TensorProto::INT32: {
      int32_t v = t.int32_data_size() ? t.int32_data(0) : 0;
      if (raw.size() == sizeof v) std::memcpy(&v, raw.data(), sizeof v);
      return absl::StrCat(v);
    }
    case onnx::TensorProto::INT64: {
      int64_t v = t.int64_data_size() ? t.int64_data(0) : 0;
      if (raw.size() == sizeof v) std::memcpy(&v, raw.data(), sizeof v);
      return absl::StrCat(v);
    }
    default:
      return "";
  }
}

const char* FillFor(const onnx::NodeProto& node) {
  const std::string& op = node.op_type();
  if (op == "QuantizeLinear") return "#aed6f1";
  if (op == "DequantizeLinear") return "#a9dfbf";
  if (op == "FakeQuant") return "#f9c784";
  if (op.find("Grad") != std::string::npos || node.name().find("_grad") != std::string::npos ||
      (node.output_size() > 0 && node.output(0).find("_grad") != std::string::npos)) {
    return "#e5e7e9";
  }
  if (op == "Clip") return "#f5b7b1";
  return "#ffffff";
}

}  // namespace

absl::StatusOr<DotGraph> ModelToDot(const qat::Model& model, const std::string& title) {
  onnx::ModelProto proto;
  if (!proto.ParseFromString(model.Serialize())) {
    return absl::InternalError(absl::StrCat("cannot reparse '", model.source(), "'"));
  }
  const onnx::GraphProto& graph = proto.graph();
  std::map<std::string, const onnx::TensorProto*> initializers;
  for (const auto& t : graph.initializer()) initializers[t.name()] = &t;
  std::map<std::string, std::string> shapes;
  for (const auto* list : {&graph.input(), &graph.output(), &graph.value_info()}) {
    for (const auto& info : *list) shapes[info.name()] = ShapeOf(info);
  }
  // Constant nodes' outputs count as initializers: they are drawn inside
  // their consumer too.
  std::map<std::string, const onnx::TensorProto*> constants = initializers;
  for (const auto& node : graph.node()) {
    if (node.op_type() == "Constant" && node.output_size() == 1) {
      for (const auto& a : node.attribute()) {
        if (a.name() == "value") constants[node.output(0)] = &a.t();
      }
    }
  }

  std::string dot = absl::StrCat(
      "digraph ", Quoted(title), " {\n  label=", Quoted(title),
      "; labelloc=t; fontname=\"Helvetica\"; fontsize=18;\n"
      "  node [fontname=\"Helvetica\" fontsize=11]; edge [fontname=\"Helvetica\" "
      "fontsize=9 color=\"#555555\"];\n");
  std::map<std::string, std::string> producer;  // tensor -> DOT node id
  for (int i = 0; i < graph.input_size(); ++i) {
    const auto& in = graph.input(i);
    if (initializers.count(in.name())) continue;
    const std::string id = absl::StrCat("in", i);
    producer[in.name()] = id;
    absl::StrAppend(&dot, "  ", id, " [shape=ellipse style=filled fillcolor=\"#eeeeee\" label=",
                    Quoted(absl::StrCat(in.name(), "\n", shapes[in.name()])), "];\n");
  }
  for (int i = 0; i < graph.node_size(); ++i) {
    const onnx::NodeProto& node = graph.node(i);
    if (node.op_type() == "Constant") continue;
    const std::string id = absl::StrCat("n", i);
    std::string rows;
    for (int k = 0; k < node.input_size(); ++k) {
      auto it = constants.find(node.input(k));
      if (node.input(k).empty() || it == constants.end()) continue;
      const std::string value = ScalarText(*it->second);
      const std::string text =
          value.empty() ? absl::StrCat(node.input(k), " \u27e8", Dims(it->second->dims()), "\u27e9")
                        : absl::StrCat(node.input(k), " = ", value);
      absl::StrAppend(&rows, "<tr><td align=\"left\"><font point-size=\"9\">", Html(text),
                      "</font></td></tr>");
    }
    const std::string domain =
        node.domain().empty() || node.domain() == "ai.onnx" ? "" : absl::StrCat(" (", node.domain(), ")");
    absl::StrAppend(&dot, "  ", id, " [shape=plaintext label=<<table border=\"1\" cellborder=\"0\" "
                    "cellspacing=\"0\" cellpadding=\"3\" bgcolor=\"", FillFor(node),
                    "\"><tr><td><b>", Html(node.op_type()), "</b>",
                    Html(domain), "</td></tr>", rows, "</table>>];\n");
    for (const std::string& in : node.input()) {
      auto it = producer.find(in);
      if (in.empty() || it == producer.end()) continue;
      absl::StrAppend(&dot, "  ", it->second, " -> ", id, " [label=", Quoted(shapes[in]),
                      "];\n");
    }
    for (const std::string& out : node.output()) {
      if (!out.empty()) producer[out] = id;
    }
  }
  for (int i = 0; i < graph.output_size(); ++i) {
    const auto& out = graph.output(i);
    const std::string id = absl::StrCat("out", i);
    absl::StrAppend(&dot, "  ", id, " [shape=ellipse style=filled fillcolor=\"#eeeeee\" label=",
                    Quoted(absl::StrCat(out.name(), "\n", shapes[out.name()])), "];\n");
    auto it = producer.find(out.name());
    if (it != producer.end()) absl::StrAppend(&dot, "  ", it->second, " -> ", id, ";\n");
  }
  return DotGraph{dot + "}\n", graph.node_size()};
}

bool HaveGraphviz() { return std::system("command -v dot > /dev/null 2>&1") == 0; }

absl::Status RenderDotToSvg(const std::string& dot_path, const std::string& svg_path) {
  if (!HaveGraphviz()) return absl::FailedPreconditionError("Graphviz's dot is not on PATH");
  const std::string quote = "'";
  auto sh = [&](const std::string& s) {
    return absl::StrCat(quote, absl::StrReplaceAll(s, {{"'", "'\\''"}}), quote);
  };
  // dot writes to a pipe, and the SVG goes through the atomic writer.
  const std::string command = absl::StrCat("dot -Tsvg ", sh(dot_path), " 2> /dev/null");
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return absl::InternalError(absl::StrCat("cannot run dot on '", dot_path, "'"));
  std::string svg;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) svg.append(buf, n);
  if (::pclose(pipe) != 0) {
    return absl::InternalError(absl::StrCat("dot failed on '", dot_path, "'"));
  }
  return qat::WriteFileAtomically(svg_path, svg);
}

}  // namespace qat_cli
