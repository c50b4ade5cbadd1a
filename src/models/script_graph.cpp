#include "models/script_graph.hpp"

#include <torch/csrc/jit/ir/constants.h>
#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <set>

#include "cnnvis/error.hpp"

namespace cnnvis::detail {

namespace jit = torch::jit;
namespace nn = torch::nn;

const c10::Symbol kTap = c10::Symbol::fromQualString("cnnvis::tap");

std::string tap_name(const jit::Node* tap) {
  return jit::constant_as<std::string>(tap->input(1)).value_or("");
}

jit::Value* tapped_source(jit::Value* v) {
  while (v->node()->kind() == kTap) v = v->node()->input(0);
  return v;
}

namespace {

class Builder {
 public:
  Builder(jit::Graph& graph, const jit::Module& module, jit::Value* x, std::string source)
      : graph_(graph), module_(module), x_(x), source_(std::move(source)) {
    int64_t i = 0;
    for (jit::Node* n : graph.block()->nodes()) order_[n] = i++;
  }

  std::vector<GraphNode> chain(jit::Value* from, jit::Value* to) {
    std::vector<GraphNode> seq;
    build(from, tapped_source(to), seq);
    absorb_block_ends(seq);
    return seq;
  }

 private:
  // The module names of a value, innermost first (a tap of a tap: "layer1.0.relu", then
  // "layer1.0", then "layer1").
  std::vector<std::string> names_of(jit::Value* v) const {
    std::vector<std::string> names;
    for (;;) {
      jit::Node* tap = nullptr;
      for (const auto& use : v->uses()) {
        if (use.user->kind() == kTap) tap = use.user;
      }
      if (!tap) return names;
      names.push_back(tap_name(tap));
      v = tap->output();
    }
  }

  [[noreturn]] void unsupported(jit::Node* n, const std::string& why = "") const {
    std::string where;
    for (jit::Value* out : n->outputs()) {
      const auto names = names_of(out);
      if (!names.empty()) where = " (layer '" + names.front() + "')";
    }
    throw Error(source_ + ": its layer graph is not a chain of Conv2d, Linear, BatchNorm2d, "
                "ReLU, pooling, flatten and dropout layers with residual additions (ResNet, "
                "VGG, AlexNet): " + std::string(n->kind().toQualString()) + where +
                (why.empty() ? "" : " " + why) + " is not one of them");
  }

  c10::IValue constant(jit::Node* n, size_t i) const {
    if (auto v = jit::toIValue(n->input(i))) return *v;
    unsupported(n, "with a computed argument " + std::to_string(i));
  }
  std::vector<int64_t> ints(jit::Node* n, size_t i) const {
    const auto v = constant(n, i);
    if (v.isInt()) return {v.toInt(), v.toInt()};
    if (!v.isIntList()) unsupported(n, "with a non-integer argument " + std::to_string(i));
    auto list = v.toIntVector();
    if (list.size() == 1) list.push_back(list[0]);
    return list;
  }
  // A parameter or buffer: the prim::GetAttr chain from `self`, or None.
  at::Tensor tensor(jit::Node* n, size_t i) const {
    c10::IValue v = attribute(n->input(i), n);
    if (v.isNone()) return {};
    if (!v.isTensor()) unsupported(n, "with a non-tensor argument " + std::to_string(i));
    return v.toTensor();
  }
  c10::IValue attribute(jit::Value* v, jit::Node* user) const {
    if (v == graph_.inputs()[0]) return module_._ivalue();
    if (auto c = jit::toIValue(v)) return *c;
    jit::Node* n = v->node();
    if (n->kind() != jit::prim::GetAttr) unsupported(user, "with a computed parameter");
    const c10::IValue owner = attribute(n->input(0), user);
    if (!owner.isObject()) unsupported(user, "with a parameter of a non-module");
    return owner.toObject()->getAttr(n->s(jit::attr::name));
  }

  GraphNode layer(jit::Node* n, const std::string& type, std::shared_ptr<nn::Module> module) {
    GraphNode node;
    node.type = type;
    node.module = std::move(module);
    auto names = names_of(n->output(0));
    if (!names.empty()) {
      node.name = names.front();
      node.aliases.assign(names.begin() + 1, names.end());
    }
    return node;
  }

  GraphNode convert(jit::Node* n) {
    const std::string kind = n->kind().toQualString();
    if (kind == "aten::conv2d" || kind == "aten::_convolution") {
      const bool traced = kind == "aten::_convolution";
      if (traced && constant(n, 6).toBool()) unsupported(n, "(transposed)");
      const auto w = tensor(n, 1);
      const auto b = tensor(n, 2);
      if (!w.defined() || w.dim() != 4) unsupported(n, "without a 4-D weight");
      auto conv = std::make_shared<nn::Conv2dImpl>(nn::Conv2dOptions(1, 1, 1).bias(false));
      for (auto& p : conv->parameters()) p.set_requires_grad(false);
      const auto padding = constant(n, 4);
      if (!padding.isIntList() && !padding.isInt()) unsupported(n, "with string padding");
      const int64_t groups = constant(n, traced ? 8 : 6).toInt();
      conv->options.in_channels(w.size(1) * groups)
          .out_channels(w.size(0))
          .kernel_size(torch::ExpandingArray<2>({w.size(2), w.size(3)}))
          .stride(torch::ExpandingArray<2>(ints(n, 3)))
          .padding(torch::ExpandingArray<2>(ints(n, 4)))
          .dilation(torch::ExpandingArray<2>(ints(n, 5)))
          .groups(groups)
          .bias(b.defined());
      conv->weight = w;
      conv->bias = b;
      return layer(n, "Conv2d", conv);
    }
    if (kind == "aten::linear") {
      const auto w = tensor(n, 1);
      const auto b = tensor(n, 2);
      auto linear = std::make_shared<nn::LinearImpl>(nn::LinearOptions(1, 1).bias(false));
      linear->options.in_features(w.size(1)).out_features(w.size(0)).bias(b.defined());
      linear->weight = w;
      linear->bias = b;
      return layer(n, "Linear", linear);
    }
    if (kind == "aten::batch_norm") {
      const auto mean = tensor(n, 3), var = tensor(n, 4);
      if (!mean.defined() || !var.defined()) unsupported(n, "without running statistics");
      auto bn = std::make_shared<nn::BatchNorm2dImpl>(nn::BatchNorm2dOptions(1));
      auto w = tensor(n, 1), b = tensor(n, 2);
      bn->options.num_features(mean.size(0)).eps(constant(n, 7).toDouble());
      bn->weight = w.defined() ? w : torch::ones_like(mean);
      bn->bias = b.defined() ? b : torch::zeros_like(mean);
      bn->running_mean = mean;
      bn->running_var = var;
      return layer(n, "BatchNorm2d", bn);
    }
    if (kind == "aten::relu") return layer(n, "ReLU", std::make_shared<nn::ReLUImpl>());
    if (kind == "aten::dropout" || kind == "aten::feature_dropout") {
      return layer(n, "Dropout", std::make_shared<nn::IdentityImpl>());
    }
    if (kind == "aten::max_pool2d") {
      auto kernel = ints(n, 1), stride = ints(n, 2);
      if (stride.empty()) stride = kernel;
      auto o = nn::MaxPool2dOptions(torch::ExpandingArray<2>(kernel))
                   .stride(torch::ExpandingArray<2>(stride))
                   .padding(torch::ExpandingArray<2>(ints(n, 3)))
                   .dilation(torch::ExpandingArray<2>(ints(n, 4)))
                   .ceil_mode(constant(n, 5).toBool());
      return layer(n, "MaxPool2d", std::make_shared<nn::MaxPool2dImpl>(o));
    }
    if (kind == "aten::avg_pool2d") {
      auto kernel = ints(n, 1), stride = ints(n, 2);
      if (stride.empty()) stride = kernel;
      auto o = nn::AvgPool2dOptions(torch::ExpandingArray<2>(kernel))
                   .stride(torch::ExpandingArray<2>(stride))
                   .padding(torch::ExpandingArray<2>(ints(n, 3)))
                   .ceil_mode(constant(n, 4).toBool())
                   .count_include_pad(constant(n, 5).toBool());
      const auto divisor = constant(n, 6);
      if (!divisor.isNone()) o.divisor_override(divisor.toInt());
      return layer(n, "AvgPool2d", std::make_shared<nn::AvgPool2dImpl>(o));
    }
    if (kind == "aten::adaptive_avg_pool2d" || kind == "aten::adaptive_max_pool2d") {
      const auto size = ints(n, 1);
      if (kind == "aten::adaptive_avg_pool2d") {
        return layer(n, "AdaptiveAvgPool2d", std::make_shared<nn::AdaptiveAvgPool2dImpl>(
                                                 nn::AdaptiveAvgPool2dOptions({size[0], size[1]})));
      }
      return layer(n, "AdaptiveMaxPool2d", std::make_shared<nn::AdaptiveMaxPool2dImpl>(
                                               nn::AdaptiveMaxPool2dOptions({size[0], size[1]})));
    }
    if (kind == "aten::flatten") {
      if (constant(n, 1).toInt() != 1 || constant(n, 2).toInt() != -1) {
        unsupported(n, "other than flatten(x, 1)");
      }
      GraphNode node = layer(n, "Flatten", nullptr);
      node.kind = GraphNode::Kind::kFlatten;
      return node;
    }
    unsupported(n);
  }

  // The values x depends on through the activations (their sources), itself included.
  std::set<jit::Value*> ancestors(jit::Value* v) const {
    std::set<jit::Value*> seen;
    std::vector<jit::Value*> stack{tapped_source(v)};
    while (!stack.empty()) {
      jit::Value* u = stack.back();
      stack.pop_back();
      if (!seen.insert(u).second || u == x_) continue;
      jit::Node* n = u->node();
      if (n->kind() == jit::aten::add) {
        stack.push_back(tapped_source(n->input(0)));
        stack.push_back(tapped_source(n->input(1)));
      } else if (n->inputs().size() > 0 && n->kind() != jit::prim::GetAttr &&
                 n->kind() != jit::prim::Constant) {
        stack.push_back(tapped_source(n->input(0)));
      }
    }
    return seen;
  }
  int64_t position(jit::Value* v) const {
    if (v == x_) return -1;
    const auto it = order_.find(v->node());
    return it == order_.end() ? -2 : it->second;
  }

  void build(jit::Value* from, jit::Value* to, std::vector<GraphNode>& seq) {
    if (to == from) return;
    if (to == x_) throw Error(source_ + ": its layer graph does not start at the image");
    jit::Node* n = to->node();
    if (n->owningBlock() != graph_.block()) unsupported(n, "(inside an if or a loop)");
    if (n->kind() == jit::aten::add) {
      if (n->inputs().size() > 2 && jit::toIValue(n->input(2)) &&
          jit::toIValue(n->input(2))->isInt() && jit::toIValue(n->input(2))->toInt() != 1) {
        unsupported(n, "with alpha != 1");
      }
      jit::Value* a = tapped_source(n->input(0));
      jit::Value* b = tapped_source(n->input(1));
      if (!a->type()->cast<c10::TensorType>() || !b->type()->cast<c10::TensorType>()) {
        unsupported(n, "of a non-tensor");
      }
      // The fork: the latest value that both summands are computed from.
      const auto pa = ancestors(a), pb = ancestors(b);
      jit::Value* fork = nullptr;
      for (jit::Value* v : pa) {
        if (pb.count(v) && (!fork || position(v) > position(fork))) fork = v;
      }
      if (!fork) unsupported(n, "(a sum with a constant)");
      build(from, fork, seq);
      GraphNode node;
      node.kind = GraphNode::Kind::kResidual;
      node.type = "Residual";
      auto first = chain(fork, a), second = chain(fork, b);
      if (first.size() < second.size()) std::swap(first, second);
      node.branch = std::move(first);
      node.shortcut = std::move(second);
      const auto names = names_of(to);
      if (!names.empty()) {
        node.name = names.front();
        node.aliases.assign(names.begin() + 1, names.end());
      }
      seq.push_back(std::move(node));
      return;
    }
    if (n->inputs().empty()) unsupported(n);
    GraphNode node = convert(n);  // first: an unsupported op is named, not what feeds it
    build(from, tapped_source(n->input(0)), seq);
    seq.push_back(std::move(node));
  }

  // A block's output is a tap of the ops after its sum ("layer1.0" on the ReLU after the
  // addition): those ops become the residual node's `after` and it takes the block's names, as
  // the zoo's blocks do.
  static void absorb_block_ends(std::vector<GraphNode>& seq) {
    for (size_t i = 0; i < seq.size(); ++i) {
      auto& r = seq[i];
      if (r.kind != GraphNode::Kind::kResidual || !r.name.empty()) continue;
      std::set<std::string> inner;
      for (const auto* part : {&r.branch, &r.shortcut}) {
        for (const auto& node : *part) {
          if (!node.name.empty()) inner.insert(node.name);
        }
      }
      auto encloses = [&](const std::string& block) {
        const std::string prefix = block + ".";
        return std::any_of(inner.begin(), inner.end(), [&](const std::string& name) {
          return name.compare(0, prefix.size(), prefix) == 0;
        });
      };
      for (size_t j = i + 1; j < seq.size() && seq[j].kind == GraphNode::Kind::kLayer; ++j) {
        std::vector<std::string> names{seq[j].name};
        names.insert(names.end(), seq[j].aliases.begin(), seq[j].aliases.end());
        const auto it = std::find_if(names.begin(), names.end(), encloses);
        if (it == names.end()) continue;
        r.name = *it;
        r.aliases.assign(it + 1, names.end());
        if (it == names.begin()) {
          seq[j].name.clear();
          seq[j].aliases.clear();
        } else {
          seq[j].name = names.front();
          seq[j].aliases.assign(names.begin() + 1, it);
        }
        r.after.assign(std::make_move_iterator(seq.begin() + static_cast<long>(i) + 1),
                       std::make_move_iterator(seq.begin() + static_cast<long>(j) + 1));
        seq.erase(seq.begin() + static_cast<long>(i) + 1, seq.begin() + static_cast<long>(j) + 1);
        break;
      }
    }
  }

  jit::Graph& graph_;
  const jit::Module& module_;
  jit::Value* x_;
  std::string source_;
  std::map<jit::Node*, int64_t> order_;
};

}  // namespace

std::vector<GraphNode> script_layer_graph(jit::Graph& graph, const jit::Module& module,
                                          jit::Value* x, jit::Value* logits,
                                          const std::string& source) {
  return Builder(graph, module, x, source).chain(x, logits);
}

}  // namespace cnnvis::detail
