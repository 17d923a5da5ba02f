#include "passes/inline_control_flow.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "graph/graph_editor.h"
#include "graph/graph_index.h"
#include "graph/rearrange.h"
#include "qat/tensor.h"

namespace qat {
namespace passes {
namespace {

using Renames = absl::flat_hash_map<std::string, std::string>;
using graph::HasSubgraph;

bool Standard(const onnx::NodeProto& node) {
  return node.domain().empty() || node.domain() == "ai.onnx";
}

const onnx::GraphProto* GraphAttr(const onnx::NodeProto& node, const std::string& name) {
  for (const auto& a : node.attribute()) {
    if (a.name() == name && a.has_g()) return &a.g();
  }
  return nullptr;
}

// Calls f on every graph nested in `node`'s attributes, at any depth.
void ForEachNestedGraph(const onnx::NodeProto& node,
                        const std::function<void(const onnx::GraphProto&)>& f) {
  auto visit = [&f](const onnx::GraphProto& g) {
    f(g);
    for (const auto& n : g.node()) ForEachNestedGraph(n, f);
  };
  for (const auto& a : node.attribute()) {
    if (a.has_g()) visit(a.g());
    for (const auto& g : a.graphs()) visit(g);
  }
}

// The names a graph defines itself: inputs, initializers, node outputs.
template <typename NameSet>
void AddDefinitions(const onnx::GraphProto& g, NameSet* names) {
  for (const auto& v : g.input()) names->insert(v.name());
  for (const auto& t : g.initializer()) names->insert(t.name());
  for (const auto& n : g.node()) {
    for (const auto& o : n.output()) {
      if (!o.empty()) names->insert(o);
    }
  }
}

// Renames the reads of `names` in the graphs nested in `node` (node inputs,
// and outputs and value_info that name an enclosing value), at every depth.
void RenameReads(const Renames& names, onnx::NodeProto* node) {
  auto rename = [&names](std::string* s) {
    if (auto it = names.find(*s); it != names.end()) *s = it->second;
  };
  auto visit = [&](onnx::GraphProto* g) {
    for (auto& n : *g->mutable_node()) {
      for (auto& i : *n.mutable_input()) rename(&i);
      RenameReads(names, &n);
    }
    for (auto& o : *g->mutable_output()) rename(o.mutable_name());
    for (auto& v : *g->mutable_value_info()) rename(v.mutable_name());
  };
  for (auto& a : *node->mutable_attribute()) {
    if (a.has_g()) visit(a.mutable_g());
    for (auto& g : *a.mutable_graphs()) visit(&g);
  }
}

class Inliner {
 public:
  Inliner(onnx::ModelProto* model, std::vector<std::string>* warnings)
      : g_(model), index_(model->graph()), warnings_(warnings) {
    const onnx::GraphProto& graph = model->graph();
    for (const auto& n : graph.node()) {
      ForEachNestedGraph(
          n, [this](const onnx::GraphProto& sub) { AddDefinitions(sub, &nested_); });
    }
    for (const auto& v : graph.input()) declared_.insert(v.name());
    for (const auto& v : graph.output()) declared_.insert(v.name());
    for (const auto& v : graph.value_info()) declared_.insert(v.name());
  }

  // Expands the If or Loop at `k` at the end of the graph; true when it did.
  bool Expand(int k) {
    const onnx::NodeProto& node = g_.graph().node(k);
    if (!Standard(node)) return false;
    if (node.op_type() == "If") return InlineIf(node);
    if (node.op_type() == "Loop") return UnrollLoop(node);
    return false;
  }

 private:
  // A name used nowhere in the graph or its subgraphs.
  std::string Fresh(const std::string& hint) {
    std::string name = g_.FreshName(hint);
    while (nested_.count(name) > 0) name = g_.FreshName(hint);
    return name;
  }

  void Warn(const onnx::NodeProto& node, const std::string& reason) {
    std::string w = absl::StrCat(training::DescribeNode(node), " is left as it is: ", reason);
    if (std::find(warnings_->begin(), warnings_->end(), w) == warnings_->end()) {
      warnings_->push_back(std::move(w));
    }
  }

  // The one element of a constant (of this graph, or of `local` when given),
  // or nullopt.
  std::optional<Tensor> Scalar(const std::string& name,
                               const graph::GraphIndex* local = nullptr) const {
    if (name.empty()) return std::nullopt;
    absl::StatusOr<Tensor> t = absl::InvalidArgumentError("");
    if (local != nullptr && local->IsConstant(name)) t = local->ConstantValue(name);
    if (!t.ok() && index_.IsConstant(name)) t = index_.ConstantValue(name);
    if (!t.ok() || t->num_elements() != 1) return std::nullopt;
    return *std::move(t);
  }
  std::optional<bool> ConstantBool(const std::string& name,
                                   const graph::GraphIndex* local = nullptr) const {
    std::optional<Tensor> t = Scalar(name, local);
    if (!t || t->dtype() != DataType::kBool) return std::nullopt;
    return t->data<bool>()[0];
  }
  std::optional<int64_t> ConstantInt(const std::string& name) const {
    std::optional<Tensor> t = Scalar(name);
    if (!t || t->dtype() != DataType::kInt64) return std::nullopt;
    return t->data<int64_t>()[0];
  }

  // Why `body` cannot be copied out ("" when it can): `bound` are the names
  // the caller binds (the body's inputs).
  static std::string CannotCopy(const onnx::GraphProto& body, bool allow_subgraphs,
                                const Renames& bound) {
    if (body.sparse_initializer_size() > 0) return "the subgraph has sparse initializers";
    absl::flat_hash_set<std::string> locals;
    AddDefinitions(body, &locals);
    for (const auto& [name, unused] : bound) locals.insert(name);
    for (const auto& n : body.node()) {
      if (!HasSubgraph(n)) continue;
      if (!allow_subgraphs) {
        return absl::StrCat("its body holds ", training::DescribeNode(n),
                            ", which has a subgraph of its own");
      }
      std::set<std::string> inner;  // sorted: the error names the same value every run
      ForEachNestedGraph(
          n, [&inner](const onnx::GraphProto& sub) { AddDefinitions(sub, &inner); });
      for (const auto& name : inner) {
        if (locals.count(name) > 0) {
          return absl::StrCat("a subgraph of ", training::DescribeNode(n),
                              " redefines the branch value '", name, "'");
        }
      }
    }
    return "";
  }

  // Appends `body`'s initializers and nodes to the graph, every local name
  // not in `names` renamed to a fresh one (added to `names`).
  void Copy(const onnx::GraphProto& body, const std::string& prefix, Renames* names) {
    onnx::GraphProto& graph = g_.graph();
    for (const auto& t : body.initializer()) {
      if (names->count(t.name()) == 0) (*names)[t.name()] = Fresh(t.name());
      onnx::TensorProto* copy = graph.add_initializer();
      *copy = t;
      copy->set_name(names->at(t.name()));
    }
    for (const auto& n : body.node()) {
      for (const auto& o : n.output()) {
        if (!o.empty() && names->count(o) == 0) (*names)[o] = Fresh(o);
      }
    }
    for (const auto& n : body.node()) {
      onnx::NodeProto* copy = graph.add_node();
      *copy = n;
      copy->set_name(Fresh(absl::StrCat(prefix, "/", n.name().empty() ? n.op_type() : n.name())));
      for (auto& i : *copy->mutable_input()) i = Resolve(*names, i);
      for (auto& o : *copy->mutable_output()) o = Resolve(*names, o);
      if (HasSubgraph(*copy)) RenameReads(*names, copy);
    }
    // The shapes inference found inside the body, for the gradient rules.
    for (const auto& v : body.value_info()) {
      auto it = names->find(v.name());
      if (it == names->end() || !declared_.insert(it->second).second) continue;
      onnx::ValueInfoProto* copy = graph.add_value_info();
      *copy = v;
      copy->set_name(it->second);
    }
  }

  // Whether a node of `body` (or a body output) reads `name`.
  static bool Reads(const onnx::GraphProto& body, const std::string& name) {
    for (const auto& n : body.node()) {
      if (std::find(n.input().begin(), n.input().end(), name) != n.input().end()) return true;
    }
    for (const auto& o : body.output()) {
      if (o.name() == name) return true;
    }
    return false;
  }

  static std::string Resolve(const Renames& names, const std::string& name) {
    auto it = names.find(name);
    return it == names.end() ? name : it->second;
  }

  void Identity(const std::string& from, const std::string& to) {
    g_.AddNode("Identity", "", {from}, {to}).set_name(Fresh(to + "/Identity"));
  }

  // A scalar constant initializer under a fresh name.
  std::string ScalarInitializer(onnx::TensorProto t, const std::string& hint) {
    t.set_name(Fresh(hint));
    *g_.graph().add_initializer() = t;
    return t.name();
  }

  bool InlineIf(const onnx::NodeProto& node) {
    std::optional<bool> cond = ConstantBool(node.input_size() > 0 ? node.input(0) : "");
    if (!cond.has_value()) return false;  // computed: nothing to inline
    const onnx::GraphProto* branch = GraphAttr(node, *cond ? "then_branch" : "else_branch");
    if (branch == nullptr) {
      Warn(node, "it has no branch for its constant condition");
      return false;
    }
    if (branch->output_size() != node.output_size()) {
      Warn(node, "its branch has a different number of outputs");
      return false;
    }
    Renames names;
    if (std::string why = CannotCopy(*branch, /*allow_subgraphs=*/true, names); !why.empty()) {
      Warn(node, why);
      return false;
    }
    absl::flat_hash_set<std::string> produced;
    for (const auto& n : branch->node()) produced.insert(n.output().begin(), n.output().end());
    // A branch output produced by a branch node is written under the If's
    // name; the rest go through an Identity.
    std::vector<int> identities;
    for (int j = 0; j < node.output_size(); ++j) {
      const std::string& o = branch->output(j).name();
      if (node.output(j).empty()) continue;
      if (produced.count(o) > 0 && names.count(o) == 0) {
        names[o] = node.output(j);
      } else {
        identities.push_back(j);
      }
    }
    const std::string prefix = node.name().empty() ? std::string("If") : node.name();
    Copy(*branch, prefix, &names);
    for (int j : identities) Identity(Resolve(names, branch->output(j).name()), node.output(j));
    return true;
  }

  bool UnrollLoop(const onnx::NodeProto& node) {
    if (node.input_size() < 2 || node.input(0).empty()) return false;
    std::optional<int64_t> trips = ConstantInt(node.input(0));
    if (!trips.has_value()) return false;
    if (!node.input(1).empty()) {
      std::optional<bool> cond = ConstantBool(node.input(1));
      if (!cond.has_value()) return false;
      if (!*cond) {
        Warn(node, "its condition is constant false (no iteration)");
        return false;
      }
    }
    if (*trips < 1 || *trips > InlineControlFlowPass::kMaxUnroll) {
      Warn(node, absl::StrCat("its trip count ", *trips, " is not in [1, ",
                              InlineControlFlowPass::kMaxUnroll, "]"));
      return false;
    }
    const onnx::GraphProto* body = GraphAttr(node, "body");
    const int carried = node.input_size() - 2;
    const int scans = node.output_size() - carried;
    if (body == nullptr || body->input_size() != 2 + carried ||
        body->output_size() != 1 + carried + scans || scans < 0) {
      Warn(node, "its body does not match its inputs and outputs");
      return false;
    }
    // The body must keep the loop going: its condition output is its
    // condition input, passed through, or a constant true.
    const graph::GraphIndex local(*body);
    const std::string& cond_in = body->input(1).name();
    const std::string& cond_out = body->output(0).name();
    const int producer = local.Producer(cond_out);
    const bool passed = cond_out == cond_in ||
                        (producer >= 0 && body->node(producer).op_type() == "Identity" &&
                         Standard(body->node(producer)) &&
                         body->node(producer).input(0) == cond_in);
    std::optional<bool> constant = ConstantBool(cond_out, &local);
    if (!passed && !(constant.has_value() && *constant)) {
      Warn(node, "its body computes its condition");
      return false;
    }
    Renames bound;
    for (const auto& v : body->input()) bound[v.name()] = v.name();
    if (std::string why = CannotCopy(*body, /*allow_subgraphs=*/false, bound); !why.empty()) {
      Warn(node, why);
      return false;
    }
    const std::string prefix = node.name().empty() ? std::string("Loop") : node.name();
    std::vector<std::string> state(node.input().begin() + 2, node.input().end());
    std::vector<std::vector<std::string>> scanned(static_cast<size_t>(scans));
    onnx::TensorProto t_true;
    t_true.set_data_type(onnx::TensorProto::BOOL);
    t_true.add_int32_data(1);
    for (int64_t i = 0; i < *trips; ++i) {
      const std::string copy = absl::StrCat(prefix, "_", i);
      onnx::TensorProto iter;
      iter.set_data_type(onnx::TensorProto::INT64);
      iter.add_int64_data(i);
      Renames names;
      if (Reads(*body, body->input(0).name())) {
        names[body->input(0).name()] = ScalarInitializer(iter, copy + "_iter");
      }
      if (Reads(*body, cond_in)) names[cond_in] = ScalarInitializer(t_true, copy + "_cond");
      for (int c = 0; c < carried; ++c) names[body->input(2 + c).name()] = state[c];
      Copy(*body, copy, &names);
      for (int c = 0; c < carried; ++c) state[c] = Resolve(names, body->output(1 + c).name());
      for (int s = 0; s < scans; ++s) {
        scanned[s].push_back(Resolve(names, body->output(1 + carried + s).name()));
      }
    }
    for (int c = 0; c < carried; ++c) {
      if (!node.output(c).empty()) Identity(state[c], node.output(c));
    }
    for (int s = 0; s < scans; ++s) {
      const std::string& out = node.output(carried + s);
      if (out.empty()) continue;
      std::vector<std::string> rows;
      for (const std::string& v : scanned[s]) rows.push_back(Unsqueeze0(v));
      g_.AddNode("Concat", "", rows, {out}, {training::AttrInt("axis", 0)})
          .set_name(Fresh(out + "/Concat"));
    }
    return true;
  }

  // Unsqueeze(v, axes = [0]) in the model's opset's spelling.
  std::string Unsqueeze0(const std::string& v) {
    const std::string out = Fresh(v + "_row");
    onnx::NodeProto* n;
    if (g_.opset() >= 13) {
      onnx::TensorProto axes;
      axes.set_data_type(onnx::TensorProto::INT64);
      axes.add_dims(1);
      axes.add_int64_data(0);
      n = &g_.AddNode("Unsqueeze", "", {v, ScalarInitializer(axes, out + "_axes")}, {out});
    } else {
      n = &g_.AddNode("Unsqueeze", "", {v}, {out}, {training::AttrInts("axes", {0})});
    }
    n->set_name(Fresh(out + "/Unsqueeze"));
    return out;
  }

  training::GraphEditor g_;
  const graph::GraphIndex index_;
  std::vector<std::string>* warnings_;
  absl::flat_hash_set<std::string> nested_;    // names defined in any subgraph
  absl::flat_hash_set<std::string> declared_;  // graph inputs, outputs, value_info
};

}  // namespace

absl::StatusOr<bool> InlineControlFlowPass::RunImpl(onnx::ModelProto* model) {
  warnings_.clear();
  // Most models have no If or Loop: then there is nothing to index.
  if (std::none_of(model->graph().node().begin(), model->graph().node().end(),
                   [](const onnx::NodeProto& n) { return graph::HasSubgraph(n); })) {
    return false;
  }
  bool changed = false;
  // Each round expands the top-level nodes; an If inside a taken branch is
  // top-level in the next round.
  for (int round = 0; round < 16; ++round) {
    onnx::GraphProto& graph = *model->mutable_graph();
    const int original = graph.node_size();
    // Expanded nodes are appended; [begin, end) of each expansion by node.
    std::vector<std::pair<int, int>> expansion(static_cast<size_t>(original), {-1, -1});
    bool any = false;
    {
      Inliner inliner(model, &warnings_);
      for (int k = 0; k < original; ++k) {
        const int begin = graph.node_size();
        if (inliner.Expand(k)) {
          expansion[k] = {begin, graph.node_size()};
          any = true;
        }
      }
    }
    if (!any) break;
    changed = true;
    // The expansions take their node's place, so that the order stays
    // topological.
    std::vector<int> order;
    for (int k = 0; k < original; ++k) {
      if (expansion[k].first < 0) {
        order.push_back(k);
        continue;
      }
      for (int r = expansion[k].first; r < expansion[k].second; ++r) order.push_back(r);
    }
    graph::Rearrange(graph.mutable_node(), order);
  }
  return changed;
}

}  // namespace passes
}  // namespace qat
